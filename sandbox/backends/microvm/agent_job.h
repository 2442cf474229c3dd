/* The job half of the guest agent (included once by agent.c): parse a JOB, build the box's
 * root, run the program under its limits, stream its output, collect files, report. */

struct job {
    char *argv[MAX_ITEMS], *env[MAX_ITEMS], *collect[MAX_ITEMS];
    int argc, envc, ncollect;
    struct { char *path; uint8_t *data; uint32_t len, mode; } files[MAX_ITEMS];
    int nfiles;
    struct { uint64_t res, soft, hard; } rl[32];
    int nrl;
    uint8_t *stdin_data, *bpf;
    uint32_t stdin_len, bpf_len;
    /* The L record, in this order (protocol.LIMIT_FIELDS). */
    uint64_t cpu_ms, wall_ms, memory, pids, output, scratch, inodes, uid, collect_max, tick_ms;
    uint64_t now_ns;
    uint8_t *entropy;
    uint32_t entropy_len;
    int interactive;
};

static char *dup_str(const uint8_t *p, uint32_t n) {
    char *s = malloc(n + 1);
    if (!s) fail("job: malloc: out of memory");
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

static uint64_t u64_at(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void parse_job(const uint8_t *p, uint32_t len, struct job *j) {
    const uint8_t *end = p + len;
    memset(j, 0, sizeof *j);
    while (p + 5 <= end) {
        uint8_t key = *p;
        uint32_t n;
        memcpy(&n, p + 1, 4);
        p += 5;
        if (n > (uint32_t)(end - p)) fail("job: record '%c' runs past the frame", key);
        const uint8_t *v = p;
        p += n;
        switch (key) {
        case 'A': if (j->argc < MAX_ITEMS - 1) j->argv[j->argc++] = dup_str(v, n); break;
        case 'E': if (j->envc < MAX_ITEMS - 1) j->env[j->envc++] = dup_str(v, n); break;
        case 'C': if (j->ncollect < MAX_ITEMS) j->collect[j->ncollect++] = dup_str(v, n); break;
        case 'F': {
            if (n < 4 || j->nfiles >= MAX_ITEMS) fail("job: bad file record");
            const uint8_t *nul = memchr(v + 4, 0, n - 4);
            if (!nul) fail("job: file record without a path");
            memcpy(&j->files[j->nfiles].mode, v, 4);
            j->files[j->nfiles].path = dup_str(v + 4, (uint32_t)(nul - v - 4));
            j->files[j->nfiles].data = (uint8_t *)nul + 1;
            j->files[j->nfiles].len = (uint32_t)(v + n - nul - 1);
            j->nfiles++;
            break;
        }
        case 'I': j->stdin_data = (uint8_t *)v; j->stdin_len = n; break;
        case 'S': j->bpf = (uint8_t *)v; j->bpf_len = n; break;
        case 'R': j->entropy = (uint8_t *)v; j->entropy_len = n; break;
        case 'T': if (n == 8) j->now_ns = u64_at(v); break;
        case 'i': j->interactive = 1; break;
        case 'r':
            if (n == 24 && j->nrl < 32) {
                j->rl[j->nrl].res = u64_at(v);
                j->rl[j->nrl].soft = u64_at(v + 8);
                j->rl[j->nrl].hard = u64_at(v + 16);
                j->nrl++;
            }
            break;
        case 'L': {
            uint64_t *f[] = {&j->cpu_ms, &j->wall_ms, &j->memory, &j->pids, &j->output, &j->scratch,
                             &j->inodes, &j->uid, &j->collect_max, &j->tick_ms};
            if (n != 8 * sizeof f / sizeof *f) fail("job: limits record of %u bytes", n);
            for (size_t i = 0; i < sizeof f / sizeof *f; i++) *f[i] = u64_at(v + 8 * i);
            break;
        }
        default: break;  /* unknown keys are skipped: an older agent ignores newer fields */
        }
    }
    if (!j->argc) fail("job: no argv");
}

/* Fresh entropy and the host's clock: a restored snapshot would otherwise share both. */
static void reseed(struct job *j) {
    if (j->now_ns) {
        struct timespec ts = {(time_t)(j->now_ns / 1000000000u), (long)(j->now_ns % 1000000000u)};
        clock_settime(CLOCK_REALTIME, &ts);
    }
    if (j->entropy_len && j->entropy_len <= 512) {
        /* Credited (RNDADDENTROPY, random(4)), so getrandom(2) never waits for the crng to
         * initialise: under TCG that wait was over a second of the first job. */
        struct { int bits, size; uint8_t buf[512]; } info = {(int)j->entropy_len * 8, (int)j->entropy_len, {0}};
        memcpy(info.buf, j->entropy, j->entropy_len);
        int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ioctl(fd, RNDADDENTROPY, &info) < 0) fail("job: ioctl(RNDADDENTROPY): %s", strerror(errno));
        close(fd);
    }
}

/* The image is data from outside, and the agent is root and not chrooted while it builds the
 * root: a symlink planted in a layer where it makes its directories (/box, /tmp, /proc, /dev)
 * or writes the job's files would send a mount, chown, chmod or write anywhere in the guest.
 * So every such path is resolved beneath the root's fd, one component at a time, with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS (openat2(2)): a symlink there is ELOOP, and the box
 * fails, naming the path, rather than the agent following it. */
static int open_beneath(int dirfd, const char *name, int flags, mode_t mode) {
    struct open_how how = {.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC), .mode = mode,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    return (int)syscall(SYS_openat2, dirfd, name, &how, sizeof how);
}

/* Why `name` under `dirfd` would not open: O_NOFOLLOW says ELOOP for a symlink, O_DIRECTORY
 * ENOTDIR, so the entry itself is asked (fstatat(2) AT_SYMLINK_NOFOLLOW). */
static const char *why(int dirfd, const char *name, int err) {
    struct stat st;
    if (err == ELOOP || (err == ENOTDIR && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                         S_ISLNK(st.st_mode)))
        return "a symlink in the image (not followed)";
    return strerror(err);
}

/* Directory `name` (one component) under `dirfd`, made with `mode` if missing (mkdirat(2)
 * never follows a final symlink: EEXIST), opened without following one. *made says which. */
static int dir_beneath(int dirfd, const char *name, mode_t mode, int *made, const char *shown) {
    *made = mkdirat(dirfd, name, mode) == 0;
    if (!*made && errno != EEXIST) fail("root: mkdirat(%s): %s", shown, strerror(errno));
    int fd = open_beneath(dirfd, name, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) fail("root: openat2(%s): %s", shown, why(dirfd, name, errno));
    return fd;
}

/* A mount on the directory an fd holds: its /proc/self/fd link names that very directory,
 * whatever the path to it has become (the way runc mounts into a container's root). */
static void mount_on(int fd, const char *src, const char *type, unsigned long flags,
                     const char *data, const char *shown) {
    char target[64];
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    CHECK(mount(src, target, type, flags, data), "root: mount(%s, %s): %s", type, shown, strerror(errno));
}

/* The job's file `path` (normalised under /box or /tmp: spec.validate): its directories made
 * as needed and given to the box user, none of them a symlink; returns it open to write. */
static int create_beneath(int root, const char *path, uid_t uid) {
    char rel[4200];
    snprintf(rel, sizeof rel, "%s", path + (*path == '/'));
    int dir = fcntl(root, F_DUPFD_CLOEXEC, 0), made;
    char *name = rel;
    char shown[4208];
    for (char *slash; (slash = strchr(name, '/')); name = slash + 1) {
        *slash = 0;  /* rel is now the path up to this component */
        snprintf(shown, sizeof shown, "/%s", rel);
        int next = dir_beneath(dir, name, 0755, &made, shown);
        if (made && fchown(next, uid, uid) < 0) fail("files: fchown(%s): %s", shown, strerror(errno));
        close(dir);
        dir = next;
        *slash = '/';
    }
    int fd = open_beneath(dir, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) fail("files: openat2(%s): %s", path, why(dir, name, errno));
    close(dir);
    return fd;
}

static void mknod_dev(int dev, const char *name, unsigned maj, unsigned min) {
    CHECK(mknodat(dev, name, S_IFCHR | 0666, makedev(maj, min)), "root: mknodat(/dev/%s): %s", name,
          strerror(errno));
}

/* overlay's lowerdir=: every layer, top-most first, sized for however many there are. */
static char *overlay_options(void) {
    size_t cap = 96 + (size_t)nlayers * 16;
    char *opts = malloc(cap);
    if (!opts) fail("root: malloc(overlay options): out of memory");
    size_t n = (size_t)snprintf(opts, cap, "lowerdir=");
    for (int i = 0; i < nlayers; i++) n += (size_t)snprintf(opts + n, cap - n, "%s/layers/%d", i ? ":" : "", i);
    n += (size_t)snprintf(opts + n, cap - n, ",upperdir=/scratch/upper,workdir=/scratch/work");
    if (n >= cap) fail("root: overlay options: %zu bytes past a buffer of %zu", n, cap);
    return opts;
}

static void build_root(struct job *j) {
    char opts[256];
    snprintf(opts, sizeof opts, "size=%llu,nr_inodes=%llu,mode=0755",
             (unsigned long long)j->scratch, (unsigned long long)j->inodes);
    mkdir("/scratch", 0755);
    CHECK(mount("scratch", "/scratch", "tmpfs", MS_NOSUID | MS_NODEV, opts),
          "root: mount(tmpfs, /scratch, %s): %s", opts, strerror(errno));
    mkdir("/scratch/upper", 0755);
    mkdir("/scratch/work", 0755);
    mkdir(ROOT, 0755);
    char *overlay = overlay_options();
    CHECK(mount("overlay", ROOT, "overlay", MS_NOSUID | MS_NODEV, overlay),
          "root: mount(overlay, %s, %s): %s", ROOT, overlay, strerror(errno));
    free(overlay);
    uid_t uid = (uid_t)j->uid;
    int root = open(ROOT, O_RDONLY | O_DIRECTORY | O_CLOEXEC), made;
    if (root < 0) fail("root: open(%s): %s", ROOT, strerror(errno));
    int box = dir_beneath(root, "box", 0755, &made, "/box");
    CHECK(fchown(box, uid, uid), "root: fchown(/box): %s", strerror(errno));
    int tmp = dir_beneath(root, "tmp", 01777, &made, "/tmp");
    CHECK(fchmod(tmp, 01777), "root: fchmod(/tmp): %s", strerror(errno));
    int proc = dir_beneath(root, "proc", 0555, &made, "/proc");
    mount_on(proc, "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2", "/proc");
    int dev_dir = dir_beneath(root, "dev", 0755, &made, "/dev");
    mount_on(dev_dir, "dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755", "/dev");
    /* Opened again: the fd above is the directory under the mount, not the new tmpfs. */
    int dev = open_beneath(root, "dev", O_RDONLY | O_DIRECTORY, 0);
    if (dev < 0) fail("root: openat2(/dev): %s", strerror(errno));
    mknod_dev(dev, "null", 1, 3);
    mknod_dev(dev, "zero", 1, 5);
    mknod_dev(dev, "full", 1, 7);
    mknod_dev(dev, "random", 1, 8);
    mknod_dev(dev, "urandom", 1, 9);
    symlinkat("/proc/self/fd", dev, "fd");
    symlinkat("/proc/self/fd/0", dev, "stdin");
    symlinkat("/proc/self/fd/1", dev, "stdout");
    symlinkat("/proc/self/fd/2", dev, "stderr");
    for (int i = 0; i < j->nfiles; i++) {
        int fd = create_beneath(root, j->files[i].path, uid);
        write_all(fd, j->files[i].data, j->files[i].len);
        fchown(fd, uid, uid);
        fchmod(fd, j->files[i].mode & 07777);
        close(fd);
    }
    int fds[] = {root, box, tmp, proc, dev_dir, dev};
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++) close(fds[i]);
}

static void set_cgroup(struct job *j) {
    char v[32];
    /* A fresh cgroup per run: memory.peak and cpu.stat count from zero. */
    CHECK(mkdir(CG, 0755), "box: mkdir(%s): %s", CG, strerror(errno));
    snprintf(v, sizeof v, "%llu", (unsigned long long)j->memory);
    write_file(CG "/memory.max", v);
    if (access(CG "/memory.swap.max", F_OK) == 0) write_file(CG "/memory.swap.max", "0");
    snprintf(v, sizeof v, "%llu", (unsigned long long)j->pids);
    write_file(CG "/pids.max", v);
}

#include "agent_run.h"
