/* Allocates and touches memory 1 MiB at a time until the cgroup's OOM killer ends it. */
#include "hostile.h"

int main(void) {
    setup();
    for (long mib = 1;; mib++) {
        char *p = malloc(1 << 20);
        if (!p) {
            printf("malloc_failed_at=%ld\n", mib);
            return 3;
        }
        memset(p, (int)mib, 1 << 20);
        if (mib % 16 == 0) printf("mib=%ld\n", mib);
    }
}
