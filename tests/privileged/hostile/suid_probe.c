/* Runs setuid-root binaries from the host's /usr and catches each one stopped right after
 * its execve (SIGSTOP is delivered on the way back to user space, once the new credentials
 * are committed), then prints its Uid line: the effective uid must never be 0. */
#include "hostile.h"

static int read_file(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = 0;
    return 0;
}

static int probe(const char *path) {
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char comm_path[64], status_path[64], buf[4096];
    int in[2];
    pipe(in); /* stdin that never delivers a byte: a password prompt waits on it */
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        execl(path, path, NULL);
        _exit(127);
    }
    close(in[0]);
    snprintf(comm_path, sizeof comm_path, "/proc/%d/comm", pid);
    snprintf(status_path, sizeof status_path, "/proc/%d/status", pid);
    int seen = 0;
    for (int i = 0; i < 200000 && !seen; i++) {
        if (read_file(comm_path, buf, sizeof buf) < 0) break;
        buf[strcspn(buf, "\n")] = 0;
        if (strncmp(buf, base, 15) == 0) seen = 1;
    }
    int st = 0;
    int caught = 0;
    if (seen && kill(pid, SIGSTOP) == 0 && waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st)) {
        if (read_file(status_path, buf, sizeof buf) == 0) {
            char *uid = strstr(buf, "\nUid:");
            char *nnp = strstr(buf, "\nNoNewPrivs:");
            if (uid) {
                uid += 5;
                uid[strcspn(uid, "\n")] = 0;
                for (char *c = uid; *c; c++)
                    if (*c == '\t') *c = ' ';
                while (*uid == ' ') uid++;
                printf("%s_uid=%s\n", base, uid);
                caught = 1;
            }
            (void)nnp;
        }
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    } else if (seen) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    } else {
        waitpid(pid, &st, 0);
    }
    close(in[1]);
    return caught;
}

int main(int argc, char **argv) {
    setup();
    printf("uid=%d\n", getuid());
    for (int i = 1; i < argc; i++) {
        int caught = 0;
        for (int attempt = 0; attempt < 20 && !caught; attempt++) caught = probe(argv[i]);
        if (!caught) {
            const char *base = strrchr(argv[i], '/') + 1;
            printf("%s_uid=unobserved\n", base);
        }
    }
    printf("euid_after=%d\n", geteuid());
    return 0;
}
