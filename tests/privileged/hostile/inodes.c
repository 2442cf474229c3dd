/* Creates empty files until the scratch file system has no inode left. */
#include "hostile.h"

int main(void) {
    setup();
    char path[64];
    long n = 0;
    for (;; n++) {
        snprintf(path, sizeof path, "/box/i%ld", n);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0) break;
        close(fd);
        if (n > 1000000) break;
    }
    printf("created=%ld\nerror=%s\n", n, strerrorname_np(errno));
    return 0;
}
