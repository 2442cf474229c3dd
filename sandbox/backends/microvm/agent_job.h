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

static void mkdirs_owned(char *path, uid_t uid) {
    for (char *s = path + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(path, 0755) == 0) chown(path, uid, uid);
        *s = '/';
    }
}

static void mknod_dev(const char *name, unsigned maj, unsigned min) {
    char path[64];
    snprintf(path, sizeof path, ROOT "/dev/%s", name);
    CHECK(mknod(path, S_IFCHR | 0666, makedev(maj, min)), "root: mknod(%s): %s", path, strerror(errno));
}

static void build_root(struct job *j) {
    char opts[256], lower[MAX_LAYERS * 16 + 16] = "";
    snprintf(opts, sizeof opts, "size=%llu,nr_inodes=%llu,mode=0755",
             (unsigned long long)j->scratch, (unsigned long long)j->inodes);
    mkdir("/scratch", 0755);
    CHECK(mount("scratch", "/scratch", "tmpfs", MS_NOSUID | MS_NODEV, opts),
          "root: mount(tmpfs, /scratch, %s): %s", opts, strerror(errno));
    mkdir("/scratch/upper", 0755);
    mkdir("/scratch/work", 0755);
    mkdir(ROOT, 0755);
    for (int i = 0; i < nlayers; i++) {
        char one[24];
        snprintf(one, sizeof one, "%s/layers/%d", i ? ":" : "", i);
        strcat(lower, one);
    }
    snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=/scratch/upper,workdir=/scratch/work", lower);
    CHECK(mount("overlay", ROOT, "overlay", MS_NOSUID | MS_NODEV, opts),
          "root: mount(overlay, %s): %s", opts, strerror(errno));
    uid_t uid = (uid_t)j->uid;
    mkdir(ROOT "/box", 0755);
    CHECK(chown(ROOT "/box", uid, uid), "root: chown(/box): %s", strerror(errno));
    mkdir(ROOT "/tmp", 01777);
    chmod(ROOT "/tmp", 01777);
    mkdir(ROOT "/proc", 0555);
    CHECK(mount("proc", ROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2"),
          "root: mount(proc): %s", strerror(errno));
    mkdir(ROOT "/dev", 0755);
    CHECK(mount("dev", ROOT "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755"),
          "root: mount(tmpfs, /dev): %s", strerror(errno));
    mknod_dev("null", 1, 3);
    mknod_dev("zero", 1, 5);
    mknod_dev("full", 1, 7);
    mknod_dev("random", 1, 8);
    mknod_dev("urandom", 1, 9);
    symlink("/proc/self/fd", ROOT "/dev/fd");
    symlink("/proc/self/fd/0", ROOT "/dev/stdin");
    symlink("/proc/self/fd/1", ROOT "/dev/stdout");
    symlink("/proc/self/fd/2", ROOT "/dev/stderr");
    for (int i = 0; i < j->nfiles; i++) {
        char path[4200];
        /* The host sent normalised box paths under /box or /tmp (spec.validate). */
        snprintf(path, sizeof path, ROOT "%s", j->files[i].path);
        mkdirs_owned(path, uid);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) fail("files: open(%s): %s", j->files[i].path, strerror(errno));
        write_all(fd, j->files[i].data, j->files[i].len);
        fchown(fd, uid, uid);
        fchmod(fd, j->files[i].mode & 07777);
        close(fd);
    }
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
