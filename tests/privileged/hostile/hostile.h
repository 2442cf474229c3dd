/* Shared by the hostile programs: each attempt prints `name=ok` or `name=<errno name>`,
 * unbuffered, so the test sees every line even if the program is killed right after. */
#ifndef HOSTILE_H
#define HOSTILE_H
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((unused)) static void setup(void) { setvbuf(stdout, NULL, _IONBF, 0); }

__attribute__((unused)) static long report(const char *name, long ret, int err) {
    if (ret == -1)
        printf("%s=%s\n", name, strerrorname_np(err) ? strerrorname_np(err) : "EUNKNOWN");
    else
        printf("%s=ok\n", name);
    return ret;
}

/* errno is read right after the call, before printf can change it. */
#define TRY(name, expr)                                  \
    ({                                                   \
        errno = 0;                                       \
        long _r = (long)(expr);                          \
        report((name), _r, errno);                       \
    })

/* A raw syscall that must not succeed; if it did create a child, the child leaves at once. */
#define TRY_CLONE(name, expr)                            \
    ({                                                   \
        errno = 0;                                       \
        long _r = (long)(expr);                          \
        if (_r == 0) _exit(0);                           \
        int _e = errno;                                  \
        if (_r > 0) waitpid((pid_t)_r, NULL, __WALL);    \
        report((name), _r, _e);                          \
    })

#endif
