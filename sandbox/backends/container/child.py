"""Child side of clone: the box's init (pid 1), which builds the box and spawns the program.

init is cloned from the zygote ahead of time and prepares in two stages. Warm (no
request yet): join the box's cgroup, clone the slot's template mounts, mount the scratch layer and
/proc, then drop to the box's uid with empty capability sets, no_new_privs and the seccomp
filter. Hot (the plan has come): place the files, set rlimits and posix_spawn the program
(vfork and execve, no second Python fork). The program inherits all of it. As pid 1 of the
namespace, init ignores every signal sent from inside (pid_namespaces(7)), and it is not
dumpable, so the program can neither signal nor ptrace it."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import signal
import socket
import struct
import time

# Only small modules: the zygote imports this one, and each of its pages is copied into
# every init that touches it.
from sandbox import bpf, caps, mounts, rlimits
from sandbox import syscalls as sc
from sandbox.backends.container.handoff import ChildPlan, Prep, receive
from sandbox.errors import SandboxError
from sandbox.files import read_regular_beneath, read_tree_beneath
from sandbox.netdev import bring_up_loopback

# Not typing.TYPE_CHECKING: typing costs the zygote a megabyte (see sandbox/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

INIT_SETUP_FAILED = 121
# Signals the zygote or Python set to SIG_IGN survive execve; the program gets them as default.
_DEFAULT_SIGNALS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}


# --- init ---


def report(fd: int, kind: str, message: str) -> None:
    try:
        os.write(fd, json.dumps({"kind": kind, "message": message}).encode())
    except OSError:
        pass


def retitle(title: bytes) -> None:
    """Overwrite this process's argv in place, so /proc/<pid>/cmdline (as seen from inside a
    box) names no host path. proc(5): arg_start and arg_end are fields 48
    and 49 of /proc/self/stat; prctl(PR_SET_NAME) sets comm."""
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])
    text = title[: end - start - 1]
    ctypes.memset(start, 0, end - start)
    ctypes.memmove(start, text, len(text))
    sc.prctl_name(text[:15])


def run_warm(sock: socket.socket) -> NoReturn:
    """Entry point of a freshly cloned init, in new pid, uts, ipc and net namespaces."""
    try:
        retitle(b"stockade-init")
        prep, fds = receive(sock)
        assert isinstance(prep, Prep)
        cpu_at_join = _prepare(prep, fds[0], fds[1:])
        sock.sendall(b"R")
    except (EOFError, ConnectionError):
        os._exit(0)  # the launcher closed the pool before using this init
    except SandboxError as e:
        _refuse(sock, e.describe())
    except BaseException as e:  # a bug here must still reach the launcher, never hang
        _refuse(sock, f"warm init: {type(e).__name__}: {e}")
    try:
        plan, fds = receive(sock)
    except (EOFError, ConnectionError):
        os._exit(0)
    assert isinstance(plan, ChildPlan)
    sock.close()
    run_init(plan.with_fds(fds), cpu_at_join)


def _refuse(sock: socket.socket, message: str) -> NoReturn:
    try:
        sock.sendall(json.dumps({"message": message}).encode())
    finally:
        os._exit(INIT_SETUP_FAILED)


def _prepare(prep: Prep, template_fd: int, cgroup_fds: list[int]) -> float:
    """Everything that does not depend on the request. Order matters: cgroup before the
    cgroup namespace (its root is then the box's cgroup); setns into the template before
    unshare (setns resets root and cwd to the template's, unshare makes the box's copy);
    /proc is mounted by this process, pid 1 of the new pid namespace; the bounding set is
    dropped while CAP_SETPCAP is still held, then the uid; no_new_privs before seccomp."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the zygote ignores it to auto-reap
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.umask(0)
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL, step="init")
    for fd in cgroup_fds:
        # Writing "0" to cgroup.procs moves the writer (cgroup-v1/cgroups.rst, cgroup-v2.rst).
        try:
            os.write(fd, b"0")
        except OSError as e:
            raise SandboxError("cgroup", "write(cgroup.procs, 0)", e.errno or 0) from e
        os.close(fd)
    sc.unshare(sc.CLONE_NEWCGROUP, step="cgroup namespace")
    cpu_at_join = _own_cpu_s()
    bring_up_loopback()
    sc.setns(template_fd, sc.CLONE_NEWNS, step="mount namespace")
    os.close(template_fd)
    sc.unshare(sc.CLONE_NEWNS, step="mount namespace")
    sc.sethostname(prep.hostname)
    mounts.apply(prep.box_ops, "/", step="mounts")
    os.chdir("/box")
    user = prep.user
    os.setgroups([])
    os.setresgid(user.gid, user.gid, user.gid)
    caps.drop_bounding_in_child(prep.last_cap)
    os.setresuid(user.uid, user.uid, user.uid)
    # A credential change clears the parent-death signal (prctl(2)): set it again, or a
    # killed launcher (and so zygote) would leave this box running with no wall limit.
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL, step="init")
    caps.clear_all_in_child()
    sc.prctl(sc.PR_SET_DUMPABLE, 0, step="dumpable")
    sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1, step="no_new_privs")
    # Last: after it, only what the profile allows works, for init and the program alike.
    # What init still does (files, rlimits, posix_spawn, wait, read, write) any profile allows.
    bpf.load(prep.seccomp_bpf)
    return cpu_at_join


def _own_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_init(plan: ChildPlan, cpu_at_join: float) -> NoReturn:
    """Never returns. Exiting kills every process left in the pid namespace."""
    try:
        _init(plan, cpu_at_join)
    except SandboxError as e:
        report(plan.report_w, "setup", e.describe())
        os._exit(INIT_SETUP_FAILED)
    except BaseException as e:  # a bug here must still end as XX, never a hung box
        report(plan.report_w, "setup", f"init: {type(e).__name__}: {e}")
        os._exit(INIT_SETUP_FAILED)
    os._exit(0)


def _init(plan: ChildPlan, cpu_at_join: float) -> None:
    _place_files(plan)
    if plan.sync_r >= 0 and os.read(plan.sync_r, 1) != b"1":
        raise SandboxError("network", "read(sync)", 0, "the launcher did not attach the network")
    rlimits.apply_in_child(list(plan.rlimits))
    start = time.monotonic()
    try:
        pid = os.posix_spawnp(
            plan.argv[0],
            list(plan.argv),
            plan.env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, plan.stdin_fd, 0),
                (os.POSIX_SPAWN_DUP2, plan.stdout_w, 1),
                (os.POSIX_SPAWN_DUP2, plan.stderr_w, 2),
            ],
            setsid=True,
            setsigdef=_DEFAULT_SIGNALS,
            setsigmask=(),
        )
    except OSError as e:
        report(plan.report_w, "exec", exec_message(plan.argv[0], e))
        return
    # Only the program may hold the write ends: the launcher's EOF means it is done.
    os.close(plan.stdout_w)
    os.close(plan.stderr_w)
    status = _wait_for(pid)
    wall = time.monotonic() - start
    # The program is done: end whatever it left behind before anything reads its files,
    # so nothing in the box can swap a file for a symlink under our feet.
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap_all()
    files: dict[str, bytes | str] = {}
    for p in plan.collect:
        if p.endswith("/"):
            files.update(read_tree_beneath(p, plan.collect_max_bytes))
        else:
            files[p] = read_regular_beneath(p, plan.collect_max_bytes)
    # init's own CPU time inside the box's cgroup, which the launcher takes off the total.
    _send_result(plan.result_w, status, wall, _own_cpu_s() - cpu_at_join, files)
    # EOF now tells the launcher the box is over; exit_mm() of this process comes later and
    # takes a while (its pages were copied from the zygote).
    os.close(plan.result_w)
    os.close(plan.report_w)


def exec_message(program: str, err: OSError) -> str:
    """What a shell would say, plus the syscall and errno for whoever debugs it."""
    name = errno.errorcode.get(err.errno or 0, str(err.errno))
    if err.errno == errno.ENOENT:
        return f"{program}: command not found (execve: {name})"
    if err.errno == errno.EACCES:
        return f"{program}: permission denied, not an executable file (execve: {name})"
    return f"{program}: cannot execute: {err.strerror} (execve: {name})"


def _place_files(plan: ChildPlan) -> None:
    """init already runs as the box's user, so the files are the program's own."""
    for path, content, mode in plan.files:
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(path, flags, mode)
            try:
                view = memoryview(content)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        except OSError as e:
            raise SandboxError("files", f"write({path})", e.errno or 0) from e


def _wait_for(pid: int) -> int:
    while True:
        got, status = os.waitpid(-1, 0)
        if got == pid:
            return status


def _reap_all() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _send_result(
    fd: int, status: int, wall: float, init_cpu: float, files: dict[str, bytes | str]
) -> None:
    sizes: dict[str, int | str] = {}
    blobs: list[bytes] = []
    for path, data in files.items():
        if isinstance(data, bytes):
            sizes[path] = len(data)
            blobs.append(data)
        else:
            sizes[path] = data
    header = {"status": status, "wall": wall, "init_cpu": init_cpu, "files": sizes}
    raw = json.dumps(header).encode()
    for chunk in (struct.pack("<I", len(raw)) + raw, *blobs):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
