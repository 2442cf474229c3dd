/* io_uring: setup, enter and register. */
#include "hostile.h"

int main(void) {
    setup();
    char params[120];
    memset(params, 0, sizeof params);
    TRY("io_uring_setup", syscall(SYS_io_uring_setup, 8, params));
    TRY("io_uring_enter", syscall(SYS_io_uring_enter, 0, 1, 0, 0, NULL, 0));
    TRY("io_uring_register", syscall(SYS_io_uring_register, 0, 0, NULL, 0));
    return 0;
}
