/* The classic chroot escape: chroot into a subdirectory while keeping a descriptor of the
 * old root, then climb out with fchdir and "..". chroot itself must be refused, and no host
 * path may become visible whatever the program does. */
#include "hostile.h"

int main(void) {
    setup();
    mkdir("/box/jail", 0755);
    int old = open("/", O_RDONLY | O_DIRECTORY);
    TRY("chroot_jail", chroot("/box/jail"));
    fchdir(old);
    for (int i = 0; i < 64; i++) chdir("..");
    TRY("chroot_dot", chroot("."));
    char cwd[4096];
    printf("cwd=%s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    struct stat st;
    TRY("stat_work", stat("/work", &st));
    TRY("stat_root_home", stat("/root", &st));
    TRY("stat_run_stockade", stat("/run/stockade", &st));
    TRY("stat_dotdot_work", stat("../../../../work", &st));
    return 0;
}
