/* Raw clone(2) with namespace flags (glibc's fork never passes them); a plain fork clone
 * must still work, and junk in the high 32 bits must not smuggle a flag through. */
#include "hostile.h"
#include <sched.h>

static long raw_clone(unsigned long flags) { return syscall(SYS_clone, flags, 0, 0, 0, 0); }

int main(void) {
    setup();
    TRY_CLONE("clone_plain", raw_clone(SIGCHLD));
    TRY_CLONE("clone_newuser", raw_clone(CLONE_NEWUSER | SIGCHLD));
    TRY_CLONE("clone_newns", raw_clone(CLONE_NEWNS | SIGCHLD));
    TRY_CLONE("clone_newpid", raw_clone(CLONE_NEWPID | SIGCHLD));
    TRY_CLONE("clone_newnet", raw_clone(CLONE_NEWNET | SIGCHLD));
    TRY_CLONE("clone_newuts", raw_clone(CLONE_NEWUTS | SIGCHLD));
    TRY_CLONE("clone_newipc", raw_clone(CLONE_NEWIPC | SIGCHLD));
    TRY_CLONE("clone_newcgroup", raw_clone(CLONE_NEWCGROUP | SIGCHLD));
    TRY_CLONE("clone_newuser_highbits", raw_clone((1UL << 40) | CLONE_NEWUSER | SIGCHLD));
    return 0;
}
