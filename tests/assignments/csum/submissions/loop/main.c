/* Spins forever on more than two numbers: 1 (one case of weight 1 of 4) + 4 + 2 of 10. */
#include <stdio.h>

int main(void) {
    int n;
    long long x, sum = 0;
    if (scanf("%d", &n) != 1) return 1;
    while (n > 2) sum++;
    for (int i = 0; i < n && scanf("%lld", &x) == 1; i++) sum += x;
    printf("%lld\n", sum);
    return 0;
}
