#include <math.h>
#include <stdio.h>

int main(void) {
    int n;
    double a, b;
    if (scanf("%d", &n) != 1) return 1;
    while (n-- > 0 && scanf("%lf %lf", &a, &b) == 2) printf("%.10f\n", hypot(a, b));
    return 0;
}
