/* Setting the host's clocks. The values are the current time, and adjtimex only reads
 * (modes 0, which any user may do): seccomp must refuse the call itself. */
#include "hostile.h"
#include <sys/time.h>
#include <sys/timex.h>
#include <time.h>

int main(void) {
    setup();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct timeval tv = {now.tv_sec, now.tv_nsec / 1000};
    TRY("settimeofday", syscall(SYS_settimeofday, &tv, NULL));
    TRY("clock_settime", syscall(SYS_clock_settime, CLOCK_REALTIME, &now));
    struct timex tx;
    memset(&tx, 0, sizeof tx);
    TRY("adjtimex_read", syscall(SYS_adjtimex, &tx));
    memset(&tx, 0, sizeof tx);
    TRY("clock_adjtime_read", syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx));
    return 0;
}
