/* ptrace(2): of the box's init, of itself, and of its own child (same uid, dumpable). */
#include "hostile.h"
#include <sys/ptrace.h>

int main(void) {
    setup();
    TRY("ptrace_attach_init", syscall(SYS_ptrace, PTRACE_ATTACH, 1, 0, 0));
    TRY("ptrace_seize_init", syscall(SYS_ptrace, PTRACE_SEIZE, 1, 0, 0));
    long word = 0;
    TRY("ptrace_peek_init", syscall(SYS_ptrace, PTRACE_PEEKDATA, 1, 0x400000, &word));
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    TRY("ptrace_attach_child", syscall(SYS_ptrace, PTRACE_ATTACH, child, 0, 0));
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    TRY("ptrace_traceme", syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0));
    return 0;
}
