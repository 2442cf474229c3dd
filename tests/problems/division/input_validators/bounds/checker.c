/* Input validator: two integers in [-1000, 1000] on one line; exit 42 when valid. */
#include <stdio.h>

int main(void) {
    int a, b;
    char end;
    if (scanf("%d %d%c", &a, &b, &end) != 3 || end != '\n') return 43;
    if (a < -1000 || a > 1000 || b < -1000 || b > 1000) return 43;
    return getchar() == EOF ? 42 : 43;
}
