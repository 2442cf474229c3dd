"""The setup box: a course's setup script run as root of a user namespace over an image, with
the image writable in an overlay upper dir (kept afterwards as a layer) and a network that
reaches only the package mirrors.

Three processes, because the mounts need host root and the script must never have it:
  C  host root in a private mount namespace: maps G's user namespace, mounts the image's
     layers through idmapped mounts (mount_setattr(2) MOUNT_ATTR_IDMAP, so files owned by
     root on disk read as owned by G's root) under an overlay with a plain upper dir;
  G  unshares a user and a network namespace, waits, then unshares mount, pid, ipc and uts
     namespaces (owned by its user namespace, so C's mounts are locked under it);
  H  pid 1 of that pid namespace: mounts /proc, pivot_root(2)s into the overlay, detaches the
     old root and execs the script. It holds every capability, in its own namespaces only.
Files the script writes land in the upper dir owned by the mapped host uids (SUBUID_BASE + n);
setuproot.shift_owners gives them back their in-box owners before the layer is committed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from sandbox import syscalls as sc
from sandbox.cgroups import join_in_child
from sandbox.images.setuproot import SOURCE_DIR, SUBUID_BASE, SUBUID_COUNT, mount_root

_ANCHOR = "/tmp"


@dataclass(frozen=True)
class SetupJob:
    """What runs: `command` by /bin/sh -c as the box's root, in SOURCE_DIR, which holds
    `files` (a tmpfs: they are not part of the layer)."""

    command: str
    files: tuple[tuple[str, bytes], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    hosts: tuple[tuple[str, str], ...] = ()  # /etc/hosts lines (address, name)
    allowed: tuple[tuple[str, int], ...] = ()  # (IPv4 address, TCP port) the box may reach
    local_dirs: tuple[str, ...] = ()  # host files or dirs bound read-only at MIRROR_DIR/<i>
    wall_time_s: float = 1800.0
    memory_bytes: int = 4 << 30  # swap included
    pids: int = 1024


def box_env(job: SetupJob) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
    }
    return env | dict(job.env)


def hosts_text(hosts: tuple[tuple[str, str], ...]) -> str:
    lines = ["127.0.0.1 localhost setup"] + [f"{a} {n}" for a, n in hosts]
    return "\n".join(lines) + "\n"


def run_setup_box(
    lowers: list[str],
    tmp: str,
    job: SetupJob,
    log_path: str,
    attach: Callable[[int], Callable[[], None]],
    cgroup_fds: list[int],
) -> tuple[int, str]:
    """Run job over lowers (top-most first) with tmp/upper as the overlay's upper dir.
    attach(pid) is called with G's pid once its network namespace exists and returns the
    function that detaches it; cgroup_fds are the box cgroup's (join_in_child), joined by C
    before anything else, so every process of the box is in it. -> (exit code, the end of
    the log)."""
    upper, work, merged = (os.path.join(tmp, n) for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.mkdir(d, 0o755)
    os.chown(upper, SUBUID_BASE, SUBUID_BASE)  # the overlay's root: the box's root owns it
    with open(os.path.join(tmp, "hosts"), "w") as f:
        f.write(hosts_text(job.hosts))
    with open(os.path.join(tmp, "resolv.conf"), "w") as f:
        f.write("# no resolver: the mirrors are in /etc/hosts\n")
    info_r, info_w = os.pipe()
    go_r, go_w = os.pipe()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(info_r)
            os.close(go_w)
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)  # never the caller's terminal or pipe
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            join_in_child(cgroup_fds)
            os.setsid()
            code = _c_main(lowers, tmp, job, info_w, go_r)
        except BaseException as e:  # anything here must end the child
            os.write(2, f"stockade setup box: {e}\n".encode())
            code = 126
        os._exit(code)
    for fd in (info_w, go_r, log_fd):
        os.close(fd)
    detach: Callable[[], None] = lambda: None  # noqa: E731
    try:
        got = _read_line(info_r)
        if got.isdigit():
            detach = attach(int(got))
            os.write(go_w, b"g")
        status = _wait(pid, job.wall_time_s)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(info_r)
        os.close(go_w)
        detach()
    code = -1 if status is None else os.waitstatus_to_exitcode(status)
    tail = _tail(log_path)
    if status is None:
        tail += f"\nstopped after {job.wall_time_s:g}s of wall time"
    shutil.rmtree(work)
    return code, tail


def _tail(path: str, lines: int = 20, most: int = 16384) -> str:
    """The log's last lines, read from its last bytes only: a script may print gigabytes."""
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - most))
        text = f.read().decode("utf-8", "replace")
    return "".join(text.splitlines(keepends=True)[-lines:])


def _read_line(fd: int) -> str:
    """C's word, or "" when it died first: every copy of the write end is C's, closed by then."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def _wait(pid: int, wall_time_s: float) -> int | None:
    """C's wait status, or None after killing its process group (C, G and the whole box:
    G's pid namespace dies with H) at the wall-time limit."""
    deadline = time.monotonic() + wall_time_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.1)


def _c_main(lowers: list[str], tmp: str, job: SetupJob, info_w: int, go_r: int) -> int:
    """C: host root, its own mount namespace. -> G's exit code."""
    sc.unshare(sc.CLONE_NEWNS, step="setup box")
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, step="setup box")
    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    gpid = os.fork()
    if gpid == 0:
        try:
            here.close()
            os.close(info_w)
            code = _g_main(job, there, go_r)
        except BaseException as e:
            os.write(2, f"stockade setup box: {e}\n".encode())
            code = 126
        os._exit(code)
    there.close()
    os.close(go_r)
    if here.recv(1) != b"r":
        os.waitpid(gpid, 0)
        return 126
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{gpid}/{name}", "w") as f:
            f.write(f"0 {SUBUID_BASE} {SUBUID_COUNT}\n")
    userns = os.open(f"/proc/{gpid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    mount_root(lowers, tmp, job.files, job.local_dirs, userns)
    # G cannot walk to the overlay (the store is 0700, and G's root is not the host's), so it
    # gets the directory itself, as an fd.
    merged = os.open(os.path.join(tmp, "merged"), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    socket.send_fds(here, [b"m"], [merged])
    os.close(merged)
    here.close()
    os.write(info_w, f"{gpid}\n".encode())
    os.close(info_w)
    _, status = os.waitpid(gpid, 0)
    return os.waitstatus_to_exitcode(status)


def _g_main(job: SetupJob, sock: socket.socket, go_r: int) -> int:
    """G: a new user and network namespace; after C's mounts and the parent's veth, the rest
    of the namespaces, then H."""
    sc.unshare(sc.CLONE_NEWUSER | sc.CLONE_NEWNET, step="setup box")
    sock.send(b"r")
    _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    sock.close()
    if len(fds) != 1 or os.read(go_r, 1) != b"g":
        return 126
    os.close(go_r)
    # Into the overlay before the new mount namespace: unshare(2) moves the cwd along to the
    # copy of its mount, which pivot_root then needs to be the caller's own.
    os.fchdir(fds[0])
    os.close(fds[0])
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    flags = sc.CLONE_NEWNS | sc.CLONE_NEWPID | sc.CLONE_NEWIPC | sc.CLONE_NEWUTS
    sc.unshare(flags, step="setup box")
    hpid = os.fork()
    if hpid == 0:
        try:
            _h_main(job)
        except BaseException as e:
            os.write(2, f"stockade setup box: {e}\n".encode())
        os._exit(126)
    _, status = os.waitpid(hpid, 0)
    return os.waitstatus_to_exitcode(status)


def _h_main(job: SetupJob) -> None:
    """H: pid 1 of the box, its cwd the overlay. /proc first (proc(5) refuses a new instance
    in a mount namespace with no fully visible one, and the host's goes with the old root),
    then pivot_root(".", ".") and a lazy unmount of the old root, which needs no put_old."""
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
    sc.mount("proc", "proc", "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    # A devpts instance of its own (devpts(5) newinstance) for apt's and dpkg's ptys.
    opts = "newinstance,ptmxmode=0666,mode=0620,gid=5"
    sc.mount("devpts", "dev/pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC, opts)
    # C's mounts are locked in this namespace (mount_namespaces(7)), and pivot_root refuses a
    # locked new root: a bind of it made here is not locked. It goes over /tmp, in this
    # namespace only, because that path is one the box's root may walk.
    sc.mount(".", _ANCHOR, None, sc.MS_BIND | sc.MS_REC)
    os.chdir(_ANCHOR)
    sc.pivot_root(".", ".", step="setup box")
    sc.umount2(".", sc.MNT_DETACH, step="setup box")
    os.chdir(SOURCE_DIR)
    sc.sethostname("setup")
    os.execve("/bin/sh", ["/bin/sh", "-c", job.command], box_env(job))
