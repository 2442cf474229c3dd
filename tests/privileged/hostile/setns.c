/* setns(2) into the namespaces the program can open: its own, and init's (the box's pid 1). */
#include "hostile.h"
#include <sched.h>

int main(void) {
    setup();
    const char *kinds[] = {"mnt", "net", "pid", "user", "uts", "ipc", "cgroup", "time"};
    char path[64], name[64];
    for (unsigned i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        snprintf(path, sizeof path, "/proc/self/ns/%s", kinds[i]);
        int fd = open(path, O_RDONLY);
        snprintf(name, sizeof name, "setns_%s", kinds[i]);
        if (fd < 0) {
            report(name, -1, errno);
            continue;
        }
        TRY(name, setns(fd, 0));
        close(fd);
    }
    TRY("open_init_mnt_ns", open("/proc/1/ns/mnt", O_RDONLY));
    TRY("setns_pidfd_init", ({
            int pfd = syscall(SYS_pidfd_open, 1, 0);
            pfd < 0 ? -1 : setns(pfd, CLONE_NEWNS | CLONE_NEWNET);
        }));
    return 0;
}
