/* The classic fork bomb: every process forks forever. pids.max must hold it and the CPU
 * limit must end it. */
#include "hostile.h"

int main(void) {
    setup();
    printf("bomb=1\n");
    for (;;) fork();
}
