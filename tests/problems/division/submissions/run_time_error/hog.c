/* Over the 64 MiB limit: a memory kill (MLE), which Kattis counts as a run-time error; where
   the allocation fails instead, abort() is a run-time error all the same. */
#include <stdlib.h>
#include <string.h>

int main(void) {
    for (int i = 0; i < 256; i++) {
        char *p = malloc(1 << 20);
        if (!p) abort();
        memset(p, i, 1 << 20);
    }
    return 0;
}
