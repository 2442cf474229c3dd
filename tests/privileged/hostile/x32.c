/* The x32 ABI: syscall numbers with bit 30 set reach the x32 table (getpid = 39). */
#include "hostile.h"

int main(void) {
    setup();
    printf("before=1\n");
    long ret = syscall(39 | 0x40000000);
    printf("survived=%ld\n", ret);
    return 0;
}
