/* Writes 1 MiB blocks to one file until something stops it: ENOSPC from the scratch tmpfs,
 * or SIGXFSZ from RLIMIT_FSIZE. */
#include "hostile.h"

int main(int argc, char **argv) {
    setup();
    const char *path = argc > 1 ? argv[1] : "/box/big";
    static char buf[1 << 20];
    memset(buf, 'D', sizeof buf);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        printf("open=%s\n", strerrorname_np(errno));
        return 2;
    }
    long total = 0;
    for (;;) {
        ssize_t n = write(fd, buf, sizeof buf);
        if (n < 0) {
            printf("error=%s\n", strerrorname_np(errno));
            break;
        }
        if (n == 0) break;
        total += n;
        printf("written=%ld\n", total);
    }
    printf("total=%ld\n", total);
    return 0;
}
