/* A fork bomb that outlives its parent: the program starts a bomb and exits at once.
 * Teardown must kill every bomber while they keep forking. */
#include "hostile.h"

int main(void) {
    setup();
    if (fork() == 0) {
        setsid();
        for (;;) fork();
    }
    usleep(100 * 1000);
    printf("parent_exits=1\n");
    return 0;
}
