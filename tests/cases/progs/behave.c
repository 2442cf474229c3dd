/* One program, many behaviours chosen by the first word of stdin: cases share one build. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    char mode[32];
    long a = 0, b = 0;
    if (scanf("%31s %ld %ld", mode, &a, &b) < 1) return 1;
    if (!strcmp(mode, "sum")) printf("%ld\n", a + b);
    else if (!strcmp(mode, "wrong")) printf("%ld\n", a - b);
    else if (!strcmp(mode, "spin")) { volatile unsigned long x = 0; for (;;) x++; }
    else if (!strcmp(mode, "alloc")) { char *p = malloc(a << 20); memset(p, 1, a << 20); printf("%d\n", p[a]); }
    else if (!strcmp(mode, "segv")) { volatile int *p = NULL; *p = 1; }
    else if (!strcmp(mode, "abort")) abort();
    else if (!strcmp(mode, "fpe")) { volatile long z = 0; printf("%ld\n", a / z); }
    else if (!strcmp(mode, "exit")) return 3;
    else if (!strcmp(mode, "flood")) for (;;) puts("spam spam spam spam spam spam");
    else if (!strcmp(mode, "stderr")) { fprintf(stderr, "to stderr\n"); }
    return 0;
}
