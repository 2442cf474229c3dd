#include <stdio.h>

int main(void) {
    volatile int *p = 0;
    printf("500\n");
    fflush(stdout);
    return *p;
}
