/* The 32-bit ABI from a 64-bit binary: int $0x80 runs the i386 syscall table (getpid is
 * 20 there), a classic seccomp bypass. The box must kill the process with SIGSYS. */
#include "hostile.h"

int main(void) {
    setup();
    printf("before=1\n");
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "cc");
    printf("survived=%ld\n", ret);
    return 0;
}
