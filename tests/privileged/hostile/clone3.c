/* clone3(2): its flags sit behind a pointer seccomp cannot read, so it must fail outright
 * (ENOSYS, which makes glibc fall back to the filtered clone). */
#include "hostile.h"
#include <sched.h>
#include <stdint.h>

struct clone_args_s {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
        set_tid, set_tid_size, cgroup;
};

static long clone3_with(uint64_t flags) {
    struct clone_args_s a = {0};
    a.flags = flags;
    a.exit_signal = SIGCHLD;
    return syscall(SYS_clone3, &a, sizeof a);
}

int main(void) {
    setup();
    TRY_CLONE("clone3_newuser", clone3_with(CLONE_NEWUSER | CLONE_NEWNS));
    TRY_CLONE("clone3_newpid_net", clone3_with(CLONE_NEWPID | CLONE_NEWNET));
    TRY_CLONE("clone3_into_cgroup", clone3_with(0x200000000ULL /* CLONE_INTO_CGROUP */));
    TRY_CLONE("clone3_plain", clone3_with(0));
    return 0;
}
