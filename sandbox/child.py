"""Child side of clone: the box's init (pid 1), which builds the box and spawns the program.

init runs in a process cloned from the zygote and only makes syscalls. It drops to the box's
uid, capabilities and seccomp filter *before* it spawns the program, so the program inherits
all of it through posix_spawn (vfork + execve, no second Python fork), and init itself is
as confined as the program while it waits. As pid 1 of the namespace it ignores every signal
sent from inside (pid_namespaces(7)), and it is not dumpable, so the program can neither
signal nor ptrace it."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import resource
import signal
import socket
import struct
import time
from dataclasses import dataclass
from typing import NoReturn

from sandbox import caps, mounts, rlimits, seccomp
from sandbox import syscalls as sc
from sandbox.cgroups import join_in_child
from sandbox.errors import SandboxError
from sandbox.files import read_regular_beneath
from sandbox.network import bring_up_loopback
from sandbox.rootfs import BoxUser

INIT_SETUP_FAILED = 121
_MAX_FDS = 32
_FD_FIELDS = ("template_fd", "sync_r", "stdin_fd", "stdout_w", "stderr_w", "report_w", "result_w")
# Signals the zygote or Python set to SIG_IGN survive execve; the program gets them as default.
_DEFAULT_SIGNALS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}


@dataclass(frozen=True)
class ChildPlan:
    """Everything init needs, prepared by the launcher. Pickled to the zygote, whose copies
    of the file descriptors replace the launcher's numbers (with_fds)."""

    template_fd: int
    sync_r: int  # -1 unless the launcher must attach a veth before the program starts
    hostname: str
    user: BoxUser
    box_ops: tuple[mounts.Op, ...]
    files: tuple[tuple[str, bytes, int], ...]
    rlimits: tuple[tuple[int, int, int], ...]
    seccomp_bpf: bytes
    last_cap: int
    argv: tuple[str, ...]
    env: dict[str, str]
    stdin_fd: int
    stdout_w: int
    stderr_w: int
    report_w: int  # setup or exec errors, as JSON
    result_w: int  # the program's wait status, wall time and collected files
    collect: tuple[str, ...]
    collect_max_bytes: int

    def fd_list(self) -> list[int]:
        return [getattr(self, f) for f in _FD_FIELDS if getattr(self, f) >= 0]

    def with_fds(self, fds: list[int]) -> ChildPlan:
        it = iter(fds)
        changes = {f: next(it) for f in _FD_FIELDS if getattr(self, f) >= 0}
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def report(fd: int, kind: str, message: str) -> None:
    try:
        os.write(fd, json.dumps({"kind": kind, "message": message}).encode())
    except OSError:
        pass


def run_warm(sock: socket.socket) -> NoReturn:
    """A box's init cloned ahead of time, in fresh pid, uts, ipc and net namespaces, waiting
    for its plan. Everything that does not depend on the plan is done before it arrives."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the zygote ignores it to auto-reap
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.umask(0)
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL, step="init")
        bring_up_loopback()
        cpu_at_join = _join_cgroup(sock)
        plan = receive_plan(sock)
    except (EOFError, OSError, SandboxError):
        os._exit(0)  # the launcher closed the pool before using this init
    sock.close()
    run_init(plan, cpu_at_join)


def send_join(sock: socket.socket, fds: list[int]) -> None:
    socket.send_fds(sock, [b"J"], fds)


def _join_cgroup(sock: socket.socket) -> float:
    msg, fds, _, _ = socket.recv_fds(sock, 1, _MAX_FDS, socket.MSG_CMSG_CLOEXEC)
    if msg != b"J":
        raise EOFError
    join_in_child(fds)
    for fd in fds:
        os.close(fd)
    # After joining, so the namespace's root is the box's own cgroup.
    sc.unshare(sc.CLONE_NEWCGROUP, step="cgroup namespace")
    return _own_cpu_s()


def _own_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def send_plan(sock: socket.socket, plan: ChildPlan) -> None:
    payload = pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL)
    socket.send_fds(sock, [struct.pack("<I", len(payload))], plan.fd_list())
    sock.sendall(payload)


def receive_plan(sock: socket.socket) -> ChildPlan:
    head, fds, _, _ = socket.recv_fds(sock, 4, _MAX_FDS, socket.MSG_CMSG_CLOEXEC)
    if not head:
        raise EOFError
    head += _recv_exact(sock, 4 - len(head))
    (size,) = struct.unpack("<I", head)
    plan: ChildPlan = pickle.loads(_recv_exact(sock, size))
    return plan.with_fds(fds)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


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
    _build_box(plan)
    _confine_self(plan)
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
        report(plan.report_w, "exec", f"execve({plan.argv[0]}): {e.strerror}")
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
    files = {p: read_regular_beneath(p, plan.collect_max_bytes) for p in plan.collect}
    # init's own CPU time inside the box's cgroup, which the launcher takes off the total.
    _send_result(plan.result_w, status, wall, _own_cpu_s() - cpu_at_join, files)
    # EOF now tells the launcher the box is over; exit_mm() of this process comes later and
    # takes a while (its pages were copied from the zygote).
    os.close(plan.result_w)
    os.close(plan.report_w)


def _build_box(plan: ChildPlan) -> None:
    """As root: the box's own mounts, network, hostname and files."""
    # setns resets root and cwd to the template's; the copy made by unshare is the box's own.
    sc.setns(plan.template_fd, sc.CLONE_NEWNS, step="mount namespace")
    sc.unshare(sc.CLONE_NEWNS, step="mount namespace")
    sc.sethostname(plan.hostname)
    # /proc must be mounted by a process inside the new pid namespace: this one is its pid 1.
    mounts.apply(plan.box_ops, "/", step="mounts")
    _place_files(plan)
    if plan.sync_r >= 0 and os.read(plan.sync_r, 1) != b"1":
        raise SandboxError("network", "read(sync)", 0, "the launcher did not attach the network")


def _confine_self(plan: ChildPlan) -> None:
    """Everything the program must inherit, applied to init itself (its cgroup it joined while
    warm). Order matters: bounding set before setuid (needs CAP_SETPCAP); no_new_privs
    before seccomp (seccomp(2)); seccomp last."""
    rlimits.apply_in_child(list(plan.rlimits))
    os.chdir("/box")
    os.setgroups([])
    os.setresgid(plan.user.gid, plan.user.gid, plan.user.gid)
    caps.drop_bounding_in_child(plan.last_cap)
    os.setresuid(plan.user.uid, plan.user.uid, plan.user.uid)
    caps.clear_all_in_child()
    sc.prctl(sc.PR_SET_DUMPABLE, 0, step="dumpable")
    sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1, step="no_new_privs")
    seccomp.install(plan.seccomp_bpf)


def _place_files(plan: ChildPlan) -> None:
    for path, content, mode in plan.files:
        parent = os.path.dirname(path)
        try:
            if not os.path.isdir(parent):
                _makedirs_owned(parent, plan.user)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
            try:
                view = memoryview(content)
                while view:
                    view = view[os.write(fd, view) :]
                os.fchown(fd, plan.user.uid, plan.user.gid)
            finally:
                os.close(fd)
        except OSError as e:
            raise SandboxError("files", f"write({path})", e.errno or 0) from e


def _makedirs_owned(path: str, user: BoxUser) -> None:
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        _makedirs_owned(parent, user)
    os.mkdir(path, 0o755)
    os.chown(path, user.uid, user.gid)


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
    raw = json.dumps({"status": status, "wall": wall, "init_cpu": init_cpu, "files": sizes}).encode()
    for chunk in (struct.pack("<I", len(raw)) + raw, *blobs):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
