/* Dereferences NULL on a negative number: 4 + 4 + 0 of 10. */
#include <stdio.h>

int main(void) {
    int n;
    long long x, sum = 0;
    if (scanf("%d", &n) != 1) return 1;
    for (int i = 0; i < n && scanf("%lld", &x) == 1; i++) {
        if (x < 0) *(volatile int *)0 = 1;
        sum += x;
    }
    printf("%lld\n", sum);
    return 0;
}
