/* The double-fork daemon: fork, setsid, fork again, ignore every catchable signal, keep the
 * stdout pipe open and keep working after the program itself has exited. */
#include "hostile.h"

int main(void) {
    setup();
    pid_t p = fork();
    if (p == 0) {
        setsid();
        if (fork() == 0) {
            for (int s = 1; s < 32; s++) signal(s, SIG_IGN);
            printf("daemon_pid=%d\n", getpid());
            for (;;) {
                int fd = open("/box/heartbeat", O_WRONLY | O_CREAT | O_APPEND, 0644);
                if (fd >= 0) {
                    write(fd, "x", 1);
                    close(fd);
                }
                usleep(10 * 1000);
            }
        }
        _exit(0);
    }
    waitpid(p, NULL, 0);
    usleep(50 * 1000);
    printf("program_exits=1\n");
    return 0;
}
