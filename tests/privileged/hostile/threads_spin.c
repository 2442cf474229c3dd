/* Five threads burning CPU. Each prints its own CPU time now and then: no single thread
 * comes near the limit, so only a limit that counts every thread can end this box. */
#include "hostile.h"
#include <pthread.h>
#include <time.h>

#define THREADS 5

static void *burn(void *arg) {
    long id = (long)arg;
    double last = 0;
    for (;;) {
        for (volatile unsigned long i = 0; i < 1000000; i++) {
        }
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        double now = ts.tv_sec + ts.tv_nsec / 1e9;
        if (now - last > 0.02) {
            printf("thread%ld_cpu=%.3f\n", id, now);
            last = now;
        }
    }
    return NULL;
}

int main(void) {
    setup();
    pthread_t t[THREADS];
    for (long i = 1; i < THREADS; i++) pthread_create(&t[i], NULL, burn, (void *)i);
    printf("threads=%d\n", THREADS);
    burn((void *)0);
}
