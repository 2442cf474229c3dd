/* Forks children that sleep until fork fails, then reports how many it got and the error;
 * the children are left behind for init to kill. */
#include "hostile.h"

int main(void) {
    setup();
    int n = 0;
    for (;;) {
        pid_t p = fork();
        if (p == 0) {
            for (;;) pause();
        }
        if (p < 0) break;
        n++;
        if (n > 10000) break;
    }
    printf("forked=%d\nfork_error=%s\n", n, strerrorname_np(errno));
    return 0;
}
