/* Stockade's microVM guest agent: PID 1 of a VM that runs one box and is then thrown away.
 *
 * Boot: mount /proc /sys /dev, load the modules listed in /etc/modules (finit_module(2)),
 * mount each layer disk (erofs, read-only, found by its virtio serial "L<n>"), mount cgroup2
 * and make the box cgroup, then say HELLO on the channel (the device the kernel command
 * line names with stockade.chan=, e.g. vport0p1 for a virtio-serial port; else ttyS0). Job: one JOB frame from the host (see
 * protocol.py for the framing and the record keys); the program runs under a tmpfs+overlay
 * root in the box cgroup (memory.max, pids.max), with rlimits, an unprivileged uid,
 * no_new_privs and the host-compiled seccomp filter; stdout/stderr stream back as frames,
 * then collected files and one RESULT frame. Nothing here knows QEMU: any VMM that boots a
 * kernel with this initramfs and one byte stream for the channel can run it.
 *
 * Built at prepare time with `gcc -static -O2`. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/random.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "\xfeSTK"
#define MAX_FRAME (64u << 20)
#define CG "/sys/fs/cgroup/box"
#define ROOT "/root"
#define MAX_LAYERS 128  /* overlay's own limit is 500; the options stay under a page */
#define MAX_ITEMS 4096

enum { T_HELLO = 'H', T_JOB = 'J', T_OUT = 'O', T_ERR = 'E', T_FILE = 'F', T_REFUSED = 'X',
       T_RESULT = 'R', T_FAIL = 'S', T_STDIN = 'I', T_WARM = 'W' };

static int chan = -1;

/* ---- framing: MAGIC, type u8, length u32le, payload, crc32(type|length|payload) u32le ---- */

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc_update(uint32_t crc, const void *buf, size_t len) {
    const uint8_t *p = buf;
    crc = ~crc;
    while (len--) crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  /* the host went away: nothing left to tell it */
        p += n;
        len -= (size_t)n;
    }
}

static void send_frame2(int type, const void *a, uint32_t alen, const void *b, uint32_t blen) {
    uint8_t head[9];
    uint32_t len = alen + blen, crc;
    memcpy(head, MAGIC, 4);
    head[4] = (uint8_t)type;
    memcpy(head + 5, &len, 4);
    crc = crc_update(0, head + 4, 5);
    crc = crc_update(crc, a, alen);
    crc = crc_update(crc, b, blen);
    write_all(chan, head, 9);
    write_all(chan, a, alen);
    write_all(chan, b, blen);
    write_all(chan, &crc, 4);
}

static void send_frame(int type, const void *buf, uint32_t len) {
    send_frame2(type, buf, len, "", 0);
}

static int read_all(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The next well-formed frame; bytes before a magic are skipped. Returns its type. */
static int read_frame(uint8_t **out, uint32_t *out_len) {
    for (;;) {
        uint8_t c;
        int matched = 0;
        while (matched < 4) {
            if (read_all(chan, &c, 1)) return -1;
            matched = c == (uint8_t)MAGIC[matched] ? matched + 1 : (c == (uint8_t)MAGIC[0]);
        }
        uint8_t head[5];
        uint32_t len, crc;
        if (read_all(chan, head, 5)) return -1;
        memcpy(&len, head + 1, 4);
        if (len > MAX_FRAME) continue;
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf || read_all(chan, buf, len) || read_all(chan, &crc, 4)) return -1;
        if (crc_update(crc_update(0, head, 5), buf, len) != crc) {
            free(buf);
            continue;
        }
        *out = buf;
        *out_len = len;
        return head[0];
    }
}

/* A sandbox failure: the step and the call, sent as a FAIL frame; the host makes it XX. */
static void fail(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof msg) n = sizeof msg - 1;
    if (chan >= 0) {
        send_frame(T_FAIL, msg, (uint32_t)n);
        for (;;) pause();
    }
    /* No channel yet: the kernel log (seen with STOCKADE_MICROVM_DEBUG=1), then power off,
     * which the host sees as QEMU ending during boot. */
    int kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
    if (kmsg >= 0) write_all(kmsg, msg, (size_t)n);
    reboot(RB_POWER_OFF);
    for (;;) pause();
}

#define CHECK(call, ...) do { if ((call) < 0) fail(__VA_ARGS__); } while (0)

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, text, strlen(text)) < 0) fail("write %s: %s: %s", path, text, strerror(errno));
    close(fd);
}

static long long read_key(const char *path, const char *key) {
    char buf[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    if (!key) return atoll(buf);
    size_t kl = strlen(key);
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, key, kl) && line[kl] == ' ') return atoll(line + kl + 1);
    return -1;
}

/* ---- boot ---- */

static void load_modules(void) {
    FILE *f = fopen("/etc/modules", "re");
    char name[256], path[300];
    if (!f) return;
    while (fgets(name, sizeof name, f)) {
        name[strcspn(name, "\n")] = 0;
        if (!*name) continue;
        snprintf(path, sizeof path, "/lib/modules/%s.ko", name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST))
            fail("boot: finit_module(%s): %s", path, strerror(errno));
        close(fd);
    }
    fclose(f);
}

static char cmdline[4096];

static const char *param(const char *key) {
    size_t kl = strlen(key);
    for (char *p = cmdline; (p = strstr(p, key)); p += kl)
        if ((p == cmdline || p[-1] == ' ') && p[kl] == '=') return p + kl + 1;
    return NULL;
}

static int nlayers;

/* Layer n is the virtio disk whose serial is "L<n>": device order is the VMM's business. */
static void mount_layers(const char *fstype) {
    const char *v = param("stockade.layers");
    nlayers = v ? atoi(v) : 0;
    if (nlayers > MAX_LAYERS) fail("boot: %d layers, at most %d", nlayers, MAX_LAYERS);
    for (int found = 0, tries = 0; found < nlayers; tries++) {
        DIR *d = opendir("/sys/block");
        struct dirent *e;
        found = 0;
        while (d && (e = readdir(d))) {
            char path[300], serial[64] = {0}, dev[300], dir[64];
            snprintf(path, sizeof path, "/sys/block/%s/serial", e->d_name);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue;
            ssize_t n = read(fd, serial, sizeof serial - 1);
            close(fd);
            if (n < 2 || serial[0] != 'L') continue;
            found++;
            snprintf(dir, sizeof dir, "/layers/%d", atoi(serial + 1));
            snprintf(dev, sizeof dev, "/dev/%s", e->d_name);
            mkdir("/layers", 0755);
            if (mkdir(dir, 0755) == 0 && mount(dev, dir, fstype, MS_RDONLY | MS_NODEV, NULL) < 0)
                fail("boot: mount(%s, %s, %s): %s", dev, dir, fstype, strerror(errno));
        }
        if (d) closedir(d);
        if (found < nlayers) {
            if (tries > 2000) fail("boot: %d of %d layer disks appeared", found, nlayers);
            usleep(5000);
        }
    }
}

static void boot(void) {
    mkdir("/proc", 0555);
    mkdir("/sys", 0555);
    mkdir("/dev", 0755);
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, NULL);
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
        if (n > 0) cmdline[n] = 0;
        close(fd);
    }
    int null = open("/dev/null", O_RDWR);
    for (int i = 0; i < 3; i++) if (fcntl(i, F_GETFD) < 0) dup2(null, i);
    /* Modules first: the channel may be a virtio port, whose node appears with its driver. */
    load_modules();
    const char *c = param("stockade.chan");
    char tty[64] = "/dev/ttyS0";
    if (c) snprintf(tty, sizeof tty, "/dev/%.*s", (int)strcspn(c, " \n"), c);
    for (int tries = 0; (chan = open(tty, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0 && tries < 1000; tries++)
        usleep(5000);
    if (chan < 0) fail("boot: open(%s): %s", tty, strerror(errno));
    struct termios t;
    if (tcgetattr(chan, &t) == 0) {  /* a serial port: raw bytes, no echo, no line editing */
        cfmakeraw(&t);
        tcsetattr(chan, TCSANOW, &t);
    }
    const char *fs = param("stockade.fs");
    char fstype[32] = "erofs";
    if (fs) snprintf(fstype, sizeof fstype, "%.*s", (int)strcspn(fs, " \n"), fs);
    mount_layers(fstype);
    mkdir("/sys/fs/cgroup", 0755);
    CHECK(mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL),
          "boot: mount(cgroup2): %s", strerror(errno));
    write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids +cpu");
}

#include "agent_job.h"

int main(void) {
    crc_init();
    /* A program that closes its stdin must not take the agent with it (write(2): EPIPE). */
    signal(SIGPIPE, SIG_IGN);
    boot();
    send_frame(T_HELLO, "stockade-agent 1", 16);
    uint8_t *job;
    uint32_t len;
    int type;
    /* WARM jobs are the host's own (an interpreter's start-up, say): they fill QEMU's
     * translation cache for the code a job will run, then everything they made goes. */
    while ((type = read_frame(&job, &len)) != T_JOB) {
        if (type < 0) reboot(RB_POWER_OFF);
        if (type != T_WARM) continue;
        run_job(job, len);
        teardown();
        free(job);
        send_frame(T_HELLO, "stockade-agent 1", 16);
    }
    run_job(job, len);
    /* One box per VM: the host kills the VM once it has the result. */
    sync();
    for (;;) pause();
}
