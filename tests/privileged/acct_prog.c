/* The accounting probe of tests/privileged/test_accounting.py (cgroup v1, this host) and of
 * tests/v2lab/test_accounting_v2.py (cgroup2 in the lab, linked statically so a box's
 * start-up under TCG costs no dynamic loading). Every CPU burn checks the kernel's own clock
 * for this process or thread (clock_gettime(2)), so the expected figure is exact rather than
 * an estimate from a loop count; every mode prints what the program itself measured. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB (1UL << 20)

static double clock_s(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void burn(clockid_t clock, double seconds) {
    volatile unsigned long x = 0;
    while (clock_s(clock) < seconds)
        for (int i = 0; i < 1000; i++) x++;
}

static double per_thread_s;

static void *thread_burn(void *arg) {
    (void)arg;
    burn(CLOCK_THREAD_CPUTIME_ID, per_thread_s);
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "burn")) {
        burn(CLOCK_PROCESS_CPUTIME_ID, atof(argv[2]));
        printf("%.6f\n", clock_s(CLOCK_PROCESS_CPUTIME_ID));
    } else if (!strcmp(mode, "threads")) {
        /* threads N S: N threads burning S seconds each on their own thread clocks; the
         * process clock then sums every thread, the main one included. */
        int n = atoi(argv[2]);
        pthread_t t[16];
        per_thread_s = atof(argv[3]);
        for (int i = 0; i < n && i < 16; i++) pthread_create(&t[i], NULL, thread_burn, NULL);
        for (int i = 0; i < n && i < 16; i++) pthread_join(t[i], NULL);
        printf("%.6f\n", clock_s(CLOCK_PROCESS_CPUTIME_ID));
    } else if (!strcmp(mode, "alloc")) {
        /* alloc N: N bytes touched, held a moment for the sampler, one byte printed. */
        size_t n = strtoull(argv[2], NULL, 10);
        char *p = malloc(n ? n : 1);
        if (!p) return 2;
        memset(p, 1, n);  /* touch every page: resident, not just reserved */
        usleep(100000);
        printf("%d\n", n ? p[n - 1] : 0);
    } else if (!strcmp(mode, "spin")) {
        for (volatile unsigned long x = 0;; x++) {}
    } else if (!strcmp(mode, "segv")) {
        *(volatile int *)0 = 1;  /* a real fault, not raise(SIGSEGV) */
    } else if (!strcmp(mode, "abort")) {
        abort();
    } else if (!strcmp(mode, "exit")) {
        return atoi(argv[2]);
    } else if (!strcmp(mode, "touch")) {
        /* touch N: N bytes allocated and every page written, so all of it is resident. */
        size_t n = strtoull(argv[2], NULL, 10);
        char *p = malloc(n ? n : 1);
        if (!p) return 2;
        memset(p, 1, n);
        printf("%zu\n", n && p[n - 1] ? n : 0);
    } else if (!strcmp(mode, "sleep")) {
        struct timespec ts = {atoi(argv[2]), 0};
        nanosleep(&ts, NULL);
    } else if (!strcmp(mode, "bomb")) {
        /* Mebibyte blocks, each written through, until the kernel stops it: after each one
         * the count so far goes out unbuffered, so the last line is what it really touched. */
        for (unsigned long n = 1;; n++) {
            char *p = malloc(MIB);
            if (!p) return 3;
            memset(p, 1, MIB);
            char line[32];
            int len = snprintf(line, sizeof line, "%lu\n", n);
            if (write(1, line, len) != len) return 4;
        }
    }
    return 0;
}
