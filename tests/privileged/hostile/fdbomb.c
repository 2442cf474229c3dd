/* Opens /dev/null until the descriptor table is full. */
#include "hostile.h"
#include <dirent.h>

int main(void) {
    setup();
    int start = -1; /* the directory stream's own descriptor is not counted */
    DIR *d = opendir("/proc/self/fd");
    while (d && readdir(d)) start++;
    if (d) closedir(d);
    start -= 2; /* . and .. */
    int opened = 0;
    while (open("/dev/null", O_RDONLY) >= 0) opened++;
    printf("start=%d\nopened=%d\nerror=%s\n", start, opened, strerrorname_np(errno));
    return 0;
}
