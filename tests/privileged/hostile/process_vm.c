/* Reaching into other processes: process_vm_readv/writev (even on itself), pidfd_getfd,
 * process_madvise and kcmp against the box's init. */
#include "hostile.h"
#include <sys/uio.h>

int main(void) {
    setup();
    char buf[64] = "hostile";
    struct iovec local = {buf, sizeof buf}, remote = {(void *)0x400000, sizeof buf};
    TRY("vm_readv_init", process_vm_readv(1, &local, 1, &remote, 1, 0));
    TRY("vm_writev_init", process_vm_writev(1, &local, 1, &remote, 1, 0));
    struct iovec self_remote = {buf, sizeof buf};
    TRY("vm_readv_self", process_vm_readv(getpid(), &local, 1, &self_remote, 1, 0));
    int pidfd = syscall(SYS_pidfd_open, 1, 0);
    printf("pidfd_open_init=%s\n", pidfd >= 0 ? "ok" : strerrorname_np(errno));
    TRY("pidfd_getfd_init", syscall(SYS_pidfd_getfd, pidfd, 0, 0));
    TRY("process_madvise_init", syscall(SYS_process_madvise, pidfd, &local, 1, 20 /* MADV_COLD */, 0));
    TRY("kcmp_init", syscall(SYS_kcmp, getpid(), 1, 0 /* KCMP_FILE */, 0, 0));
    return 0;
}
