/* The run half of the guest agent (included once by agent_job.h): the child's ordered steps
 * ending in execve, the parent's watch over output, CPU and wall time, collection, report. */

#include "agent_stdin.h"

/* Child side. Order: cgroup first (charges stay where they were made), then the root, fds,
 * rlimits, credentials, no_new_privs, and seccomp last, just before execve. */
static void child(struct job *j, int in_fd, int out_w, int err_w, int report_w) {
    char msg[512];
    const char *step = "cgroup";
    int cg = open(CG "/cgroup.procs", O_WRONLY | O_CLOEXEC);
    if (cg < 0 || write(cg, "0", 1) < 0) goto out;
    signal(SIGPIPE, SIG_DFL);  /* the agent ignores it; an ignored signal survives execve */
    step = "setsid";
    if (setsid() < 0) goto out;
    step = "chroot";
    if (chdir(ROOT) < 0 || chroot(".") < 0 || chdir("/box") < 0) goto out;
    step = "dup2";
    if (dup2(in_fd, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0) goto out;
    step = "close_range";
    for (int fd = 3; fd < 1024; fd++) if (fd != report_w) close(fd);
    step = "setrlimit";
    for (int i = 0; i < j->nrl; i++) {
        struct rlimit r = {(rlim_t)j->rl[i].soft, (rlim_t)j->rl[i].hard};
        if (setrlimit((int)j->rl[i].res, &r) < 0) goto out;
    }
    /* The bounding set goes too, as in a container box: with it full, a capability could
     * come back by any path no_new_privs does not cover. EINVAL: past CAP_LAST_CAP. */
    step = "prctl(PR_CAPBSET_DROP)";
    for (int cap = 0; cap < 64; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) goto out;
    step = "setgroups";
    if (setgroups(0, NULL) < 0) goto out;
    step = "setresgid";
    if (setresgid((gid_t)j->uid, (gid_t)j->uid, (gid_t)j->uid) < 0) goto out;
    step = "setresuid";
    if (setresuid((uid_t)j->uid, (uid_t)j->uid, (uid_t)j->uid) < 0) goto out;
    step = "prctl(PR_SET_NO_NEW_PRIVS)";
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) goto out;
    for (int i = 0; i < j->envc; i++)
        if (!strncmp(j->env[i], "PATH=", 5)) setenv("PATH", j->env[i] + 5, 1);
    step = "prctl(PR_SET_SECCOMP)";
    if (j->bpf_len) {
        struct sock_fprog prog = {(unsigned short)(j->bpf_len / 8), (struct sock_filter *)j->bpf};
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) goto out;
    }
    execvpe(j->argv[0], j->argv, j->env);
    /* Not a sandbox failure: the program could not be run (RE 127, as the container tier). */
    snprintf(msg, sizeof msg, "E%s: %s", j->argv[0], strerror(errno));
    write_all(report_w, msg, strlen(msg));
    _exit(127);
out:
    snprintf(msg, sizeof msg, "Sbox: %s: %s", step, strerror(errno));
    write_all(report_w, msg, strlen(msg));
    _exit(127);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void kill_box(void) {
    int fd = open(CG "/cgroup.kill", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        write(fd, "1", 1);
        close(fd);
    }
}

struct watch {
    uint64_t sent, cap;
    int output_exceeded, wall_exceeded;
};

/* Forwards a pipe's bytes as frames up to the output cap; returns 0 at EOF. */
static int pump(int fd, int type, struct watch *w) {
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
    if (n <= 0) return 0;
    uint64_t room = w->cap > w->sent ? w->cap - w->sent : 0;
    if ((uint64_t)n > room) {
        if (!w->output_exceeded) kill_box();
        w->output_exceeded = 1;
        n = (ssize_t)room;
    }
    if (n > 0) send_frame(type, buf, (uint32_t)n);
    w->sent += (uint64_t)n;
    return 1;
}

static void collect_one(int root, const char *path, uint64_t *budget, int depth);

static void refuse(const char *path, const char *why) {
    send_frame2(T_REFUSED, path, (uint32_t)strlen(path) + 1, why, (uint32_t)strlen(why));
}

/* openat2 with RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS: no symlink the program planted is
 * followed, and nothing resolves outside the box's root (openat2(2)). */
static int open_in_root(int root, const char *path, int flags) {
    struct open_how how = {.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK),
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    return (int)syscall(SYS_openat2, root, path, &how, sizeof how);
}

static void collect_dir(int root, const char *path, uint64_t *budget, int depth) {
    int fd = open_in_root(root, path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) { refuse(path, strerror(errno)); return; }
    DIR *d = fdopendir(fd);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[4200];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        collect_one(root, sub, budget, depth + 1);
    }
    if (d) closedir(d);
}

static void collect_one(int root, const char *path, uint64_t *budget, int depth) {
    struct stat st;
    int fd = open_in_root(root, path, O_RDONLY);
    if (fd < 0) {
        refuse(path, errno == ELOOP ? "a symlink (not followed)" : strerror(errno));
        return;
    }
    if (fstat(fd, &st) < 0) { refuse(path, strerror(errno)); close(fd); return; }
    if (S_ISDIR(st.st_mode) && depth > 0 && depth < 16) { close(fd); collect_dir(root, path, budget, depth); return; }
    if (!S_ISREG(st.st_mode)) { refuse(path, "not a regular file"); close(fd); return; }
    if ((uint64_t)st.st_size > *budget) { refuse(path, "over the size cap"); close(fd); return; }
    /* The file and its path travel in one frame, which the host takes up to MAX_FRAME. */
    uint32_t room = MAX_FRAME - (uint32_t)strlen(path) - 1;
    if ((uint64_t)st.st_size > room) {
        char msg[96];
        snprintf(msg, sizeof msg, "too big for the VM's channel (%u bytes at most)", room);
        refuse(path, msg);
        close(fd);
        return;
    }
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    ssize_t n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    if (n < 0) { refuse(path, strerror(errno)); free(buf); return; }
    *budget -= (uint64_t)n;
    send_frame2(T_FILE, path, (uint32_t)strlen(path) + 1, buf, (uint32_t)n);
    free(buf);
}

static void collect(struct job *j) {
    int root = open(ROOT, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    uint64_t budget = j->collect_max;
    for (int i = 0; i < j->ncollect; i++) {
        char *p = j->collect[i];
        size_t n = strlen(p);
        if (n > 1 && p[n - 1] == '/') {  /* a directory: every regular file under it */
            p[n - 1] = 0;
            collect_dir(root, p, &budget, 1);
        } else {
            collect_one(root, p, &budget, 0);
        }
    }
    close(root);
}

static void run_job(uint8_t *raw, uint32_t len) {
    static struct job j;
    int out[2], err[2], rep[2];
    parse_job(raw, len, &j);
    reseed(&j);
    build_root(&j);
    set_cgroup(&j);
    struct relay relay = {-1, 1, NULL, NULL, 0, 0, 0, 0};
    int in_fd = -1;
    if (j.interactive) {  /* stdin from the host as it comes (an interactor) */
        int in[2];
        if (pipe2(in, O_CLOEXEC)) fail("stdin: pipe2: %s", strerror(errno));
        in_fd = in[0];
        relay.pipe_w = in[1];
        relay.eof = 0;
        fcntl(in[1], F_SETFL, O_NONBLOCK);
        fcntl(chan, F_SETFL, O_NONBLOCK);
    } else {  /* the whole of stdin, seekable, as the container tier's sealed memfd */
        in_fd = memfd_create("stdin", MFD_CLOEXEC);
        if (in_fd < 0) fail("stdin: memfd_create: %s", strerror(errno));
        write_all(in_fd, j.stdin_data, j.stdin_len);
        lseek(in_fd, 0, SEEK_SET);
    }
    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(rep, O_CLOEXEC))
        fail("box: pipe2: %s", strerror(errno));
    double start = now_s();
    pid_t pid = fork();
    if (pid < 0) fail("box: fork: %s", strerror(errno));
    if (pid == 0) child(&j, in_fd, out[1], err[1], rep[1]);
    close(in_fd);
    close(out[1]);
    close(err[1]);
    close(rep[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    struct watch w = {0, j.output, 0, 0};
    int status = -1, open_out = 1, open_err = 1;
    double wall = j.wall_ms / 1000.0, end = start;
    while (open_out || open_err || status < 0) {
        int relaying = relay.pipe_w >= 0 && status < 0;
        struct pollfd p[4] = {
            {open_out ? out[0] : -1, POLLIN, 0},
            {open_err ? err[0] : -1, POLLIN, 0},
            {relaying && !relay.eof && relay.tx_len < RELAY_HIGH ? chan : -1, POLLIN, 0},
            {relaying && relay.tx_len ? relay.pipe_w : -1, POLLOUT, 0},
        };
        double left = start + wall - now_s();
        int tick = (int)j.tick_ms;
        if (left * 1000 < tick) tick = left > 0 ? (int)(left * 1000) + 1 : 0;
        poll(p, 4, tick);
        if (open_out && p[0].revents) open_out = pump(out[0], T_OUT, &w);
        if (open_err && p[1].revents) open_err = pump(err[0], T_ERR, &w);
        if (p[2].revents) relay_read(&relay);
        if (p[3].revents || relay.eof) relay_write(&relay);
        /* Every child: orphans of the box are the agent's (it is PID 1) and are reaped too. */
        for (int st, got; (got = waitpid(-1, &st, WNOHANG)) > 0;) {
            if (got != pid || status >= 0) continue;
            status = st;
            end = now_s();
            /* The program is done: whatever it left behind goes, so the pipes close. */
            kill_box();
        }
        if (status < 0 && now_s() - start >= wall) {
            w.wall_exceeded = 1;
            kill_box();
        }
        if (status < 0 && read_key(CG "/cpu.stat", "usage_usec") >= (long long)j.cpu_ms * 1000)
            kill_box();
    }
    relay_close(&relay);
    fcntl(chan, F_SETFL, 0);
    char report[600] = {0};
    ssize_t rn = read(rep[0], report, sizeof report - 1);
    if (rn > 0 && report[0] == 'S') fail("%s", report + 1);
    collect(&j);
    struct {
        int32_t status;
        uint32_t oom, output_exceeded, wall_exceeded;
        uint64_t cpu_usec, wall_usec, peak;
    } r = {status, 0, (uint32_t)w.output_exceeded, (uint32_t)w.wall_exceeded, 0, 0, 0};
    long long oom = read_key(CG "/memory.events", "oom_kill");
    r.oom = oom > 0;
    r.cpu_usec = (uint64_t)read_key(CG "/cpu.stat", "usage_usec");
    r.wall_usec = (uint64_t)((end - start) * 1e6);
    r.peak = (uint64_t)read_key(CG "/memory.peak", NULL);
    const char *exec_error = rn > 0 && report[0] == 'E' ? report + 1 : "";
    send_frame2(T_RESULT, &r, sizeof r, exec_error, (uint32_t)strlen(exec_error));
    close(out[0]);
    close(err[0]);
    close(rep[0]);
}

/* After a WARM job: the box's processes, cgroup and mounts go, so the job finds none. */
static void teardown(void) {
    kill_box();
    for (int i = 0; i < 500 && read_key(CG "/cgroup.events", "populated") != 0; i++) usleep(2000);
    CHECK(rmdir(CG), "warm: rmdir(%s): %s", CG, strerror(errno));
    const char *mounts[] = {ROOT "/proc", ROOT "/dev", ROOT, "/scratch"};
    for (size_t i = 0; i < sizeof mounts / sizeof *mounts; i++)
        CHECK(umount2(mounts[i], MNT_DETACH | UMOUNT_NOFOLLOW), "warm: umount(%s): %s", mounts[i],
              strerror(errno));
}
