#include <stdio.h>
#include <string.h>

int main(void) {
    int low = 1, high = 100;
    char answer[16];
    for (;;) {
        int mid = (low + high) / 2;
        printf("%d\n", mid);
        fflush(stdout);
        if (scanf("%15s", answer) != 1 || strcmp(answer, "correct") == 0) return 0;
        if (strcmp(answer, "lower") == 0) high = mid - 1; else low = mid + 1;
    }
}
