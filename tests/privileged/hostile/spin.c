/* One thread burning CPU forever. */
#include "hostile.h"

int main(void) {
    setup();
    printf("spinning=1\n");
    for (volatile unsigned long i = 0;; i++) {
    }
}
