/* Signals the box's init (pid 1) with everything that would end or stop a normal process.
 * Init of a pid namespace ignores signals from inside it: the program must go on. */
#include "hostile.h"

int main(void) {
    setup();
    TRY("kill_init_sigkill", kill(1, SIGKILL));
    TRY("kill_init_sigstop", kill(1, SIGSTOP));
    TRY("kill_init_sigint", kill(1, SIGINT));
    TRY("kill_init_sigterm", kill(1, SIGTERM));
    TRY("kill_init_sigsegv", kill(1, SIGSEGV));
    TRY("kill_all", kill(-1, SIGKILL));
    usleep(100 * 1000);
    TRY("init_alive", kill(1, 0));
    printf("program_alive=1\n");
    return 0;
}
