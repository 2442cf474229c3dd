/* userfaultfd(2) (user-mode-only faults are open to users by default) and its device. */
#include "hostile.h"

int main(void) {
    setup();
    TRY("userfaultfd_user", syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* USER_MODE_ONLY */));
    TRY("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    TRY("dev_userfaultfd", open("/dev/userfaultfd", O_RDWR));
    return 0;
}
