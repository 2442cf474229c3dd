/* Stops itself: nothing will ever continue it. Only the wall clock can end this box. */
#include "hostile.h"

int main(void) {
    setup();
    printf("stopping=1\n");
    raise(SIGSTOP);
    printf("resumed=1\n");
    return 0;
}
