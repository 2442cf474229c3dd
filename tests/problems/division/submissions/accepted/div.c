#include <stdio.h>

int main(void) {
    double a, b;
    if (scanf("%lf %lf", &a, &b) != 2) return 1;
    printf("%.6f\n", a / b); /* inf, -inf, -nan: any case, any sign of nan */
    return 0;
}
