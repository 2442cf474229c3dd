/* perf_event_open(2): even a software counter on itself (allowed to users by default). */
#include "hostile.h"
#include <linux/perf_event.h>

static long open_counter(int type, int config, pid_t pid) {
    struct perf_event_attr pe;
    memset(&pe, 0, sizeof pe);
    pe.type = type;
    pe.size = sizeof pe;
    pe.config = config;
    pe.exclude_kernel = 1;
    pe.exclude_hv = 1;
    return syscall(SYS_perf_event_open, &pe, pid, -1, -1, 0);
}

int main(void) {
    setup();
    TRY("perf_sw_self", open_counter(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK, 0));
    TRY("perf_hw_self", open_counter(PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS, 0));
    TRY("perf_init", open_counter(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK, 1));
    return 0;
}
