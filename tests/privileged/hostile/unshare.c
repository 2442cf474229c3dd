/* unshare(2) of every namespace (a user namespace hands out a full capability set). */
#include "hostile.h"
#include <sched.h>

int main(void) {
    setup();
    TRY("unshare_user", unshare(CLONE_NEWUSER));
    TRY("unshare_user_ns", unshare(CLONE_NEWUSER | CLONE_NEWNS));
    TRY("unshare_mnt", unshare(CLONE_NEWNS));
    TRY("unshare_pid", unshare(CLONE_NEWPID));
    TRY("unshare_net", unshare(CLONE_NEWNET));
    TRY("unshare_uts", unshare(CLONE_NEWUTS));
    TRY("unshare_ipc", unshare(CLONE_NEWIPC));
    TRY("unshare_cgroup", unshare(CLONE_NEWCGROUP));
    TRY("unshare_time", unshare(0x80 /* CLONE_NEWTIME */));
    TRY("unshare_user_highbits", syscall(SYS_unshare, (1UL << 32) | CLONE_NEWUSER));
    return 0;
}
