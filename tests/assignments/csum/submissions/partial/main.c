/* An int sum overflows on the second large case (weight 3 of 4): 4 + 1 + 2 of 10. */
#include <stdio.h>

int main(void) {
    int n, x;
    unsigned sum = 0;
    if (scanf("%d", &n) != 1) return 1;
    for (int i = 0; i < n && scanf("%d", &x) == 1; i++) sum += (unsigned)x;
    printf("%d\n", (int)sum);
    return 0;
}
