/* Writes to stdout as fast as it can, forever. */
#include "hostile.h"

int main(void) {
    static char buf[1 << 16];
    memset(buf, 'A', sizeof buf);
    for (;;) write(1, buf, sizeof buf);
}
