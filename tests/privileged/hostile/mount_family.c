/* Every way to change the mount table: the classic mount(2) calls, the new mount API
 * (fsopen, fspick, open_tree, move_mount, fsconfig, fsmount, mount_setattr), umount of the
 * /proc masks, pivot_root and chroot. All must be refused by seccomp. */
#include "hostile.h"
#include <sys/mount.h>

struct mount_attr_s { unsigned long long set, clr, propagation, userns_fd; };

int main(void) {
    setup();
    mkdir("/box/m", 0755);
    TRY("mount_tmpfs", mount("none", "/box/m", "tmpfs", 0, "size=1m"));
    TRY("mount_proc", mount("proc", "/box/m", "proc", 0, NULL));
    TRY("mount_sysfs", mount("sysfs", "/box/m", "sysfs", 0, NULL));
    TRY("mount_cgroup", mount("cgroup", "/box/m", "cgroup", 0, "memory"));
    TRY("mount_cgroup2", mount("cgroup2", "/box/m", "cgroup2", 0, NULL));
    TRY("mount_bind_root", mount("/", "/box/m", NULL, MS_BIND | MS_REC, NULL));
    TRY("remount_usr_rw", mount(NULL, "/usr", NULL, MS_REMOUNT | MS_BIND, NULL));
    TRY("remount_root_rw", mount(NULL, "/", NULL, MS_REMOUNT, NULL));
    TRY("make_shared", mount(NULL, "/", NULL, MS_SHARED | MS_REC, NULL));
    TRY("umount_kallsyms_mask", umount2("/proc/kallsyms", MNT_DETACH));
    TRY("umount_proc_sys", umount2("/proc/sys", MNT_DETACH));
    TRY("umount_usr", umount2("/usr", 0));
    TRY("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
    TRY("fspick", syscall(SYS_fspick, AT_FDCWD, "/usr", 0));
    TRY("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/", 1 /* OPEN_TREE_CLONE */));
    TRY("move_mount", syscall(SYS_move_mount, AT_FDCWD, "/usr", AT_FDCWD, "/box/m", 0));
    TRY("fsconfig", syscall(SYS_fsconfig, 3, 6 /* FSCONFIG_CMD_CREATE */, NULL, NULL, 0));
    TRY("fsmount", syscall(SYS_fsmount, 3, 0, 0));
    struct mount_attr_s attr = {0};
    TRY("mount_setattr", syscall(SYS_mount_setattr, AT_FDCWD, "/usr", 0, &attr, sizeof attr));
    TRY("pivot_root", syscall(SYS_pivot_root, ".", "."));
    TRY("chroot", chroot("/box"));
    struct stat st;
    if (stat("/proc/kallsyms", &st) == 0) printf("kallsyms_size=%ld\n", (long)st.st_size);
    return 0;
}
