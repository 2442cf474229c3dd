/* Reads, writes, renames, truncates and chmods the host's canary files by every path
 * that might lead out of the box: as given, through /proc/1/root, /proc/self/root and
 * a long run of "..". No call may reach a host file. */
#include "hostile.h"

static void attack(const char *tag, const char *path) {
    char name[128], buf[256];
    snprintf(name, sizeof name, "%s_read", tag);
    int fd = TRY(name, open(path, O_RDONLY));
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        printf("%s_content=%s\n", tag, buf);
    }
    snprintf(name, sizeof name, "%s_write", tag);
    fd = TRY(name, open(path, O_WRONLY | O_APPEND));
    if (fd >= 0) write(fd, "PWNED", 5);
    snprintf(name, sizeof name, "%s_truncate", tag);
    TRY(name, truncate(path, 0));
    snprintf(name, sizeof name, "%s_chmod", tag);
    TRY(name, chmod(path, 0777));
    snprintf(name, sizeof name, "%s_unlink", tag);
    TRY(name, unlink(path));
}

int main(int argc, char **argv) {
    setup();
    char path[4096];
    for (int i = 1; i < argc; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "c%d_direct", i);
        attack(tag, argv[i]);
        snprintf(tag, sizeof tag, "c%d_proc1root", i);
        snprintf(path, sizeof path, "/proc/1/root%s", argv[i]);
        attack(tag, path);
        snprintf(tag, sizeof tag, "c%d_procselfroot", i);
        snprintf(path, sizeof path, "/proc/self/root/../../..%s", argv[i]);
        attack(tag, path);
        snprintf(tag, sizeof tag, "c%d_dotdot", i);
        snprintf(path, sizeof path, "../../../../../../..%s", argv[i]);
        attack(tag, path);
    }
    return 0;
}
