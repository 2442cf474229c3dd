"""Child side of clone: the box's init (pid 1) and the program's last steps before execve.

Both run in a process forked from the launcher, so they only make syscalls: no imports, no
locks, no logging (another launcher thread may have held those at fork time)."""

from __future__ import annotations

import json
import os
import signal
import struct
import time
from dataclasses import dataclass
from typing import NoReturn

from sandbox import caps, mounts, rlimits
from sandbox import syscalls as sc
from sandbox.cgroups import join_in_child
from sandbox.errors import SandboxError
from sandbox.files import read_regular_beneath
from sandbox.network import bring_up_loopback
from sandbox.rootfs import BoxUser

INIT_SETUP_FAILED = 121
EXEC_FAILED = 127


@dataclass(frozen=True)
class ChildPlan:
    """Everything the two child processes need, prepared by the parent before fork."""

    template_fd: int
    netns_fd: int  # -1: unshare a fresh one here
    net_granted: bool
    sync_r: int  # -1 unless the parent must act (attach a veth) before the program starts
    hostname: str
    user: BoxUser
    box_ops: tuple[mounts.Op, ...]
    files: tuple[tuple[str, bytes, int], ...]
    rlimits: tuple[tuple[int, int, int], ...]
    cgroup_fds: tuple[int, ...]
    seccomp_install: object  # a callable loading the compiled BPF (seccomp.CompiledFilter)
    last_cap: int
    argv: tuple[str, ...]
    env: dict[str, str]
    stdin_fd: int
    stdout_w: int
    stderr_w: int
    report_w: int  # setup or exec errors, as JSON
    result_w: int  # init's verdict record and collected files
    collect: tuple[str, ...]
    collect_max_bytes: int


def report(fd: int, kind: str, message: str) -> None:
    try:
        os.write(fd, json.dumps({"kind": kind, "message": message}).encode())
    except OSError:
        pass


def run_init(plan: ChildPlan) -> NoReturn:
    """pid 1 of the box: build the box's view, start the program, reap, collect, exit.
    Exiting kills every process left in the pid namespace (pid_namespaces(7))."""
    try:
        _init(plan)
    except SandboxError as e:
        report(plan.report_w, "setup", e.describe())
        os._exit(INIT_SETUP_FAILED)
    except BaseException as e:  # a bug here must still end as XX, never a hung box
        report(plan.report_w, "setup", f"init: {type(e).__name__}: {e}")
        os._exit(INIT_SETUP_FAILED)
    os._exit(0)


def _init(plan: ChildPlan) -> None:
    # Order matters: the template mount namespace first (setns resets root and cwd to it),
    # then private copies of mount/uts/ipc/net, then mounts that need the new pid namespace.
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL, step="init")
    sc.setns(plan.template_fd, sc.CLONE_NEWNS, step="mount namespace")
    flags = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC
    if plan.netns_fd < 0:
        flags |= sc.CLONE_NEWNET
    sc.unshare(flags, step="namespaces")
    if plan.netns_fd >= 0:
        sc.setns(plan.netns_fd, sc.CLONE_NEWNET, step="network namespace")
    elif not plan.net_granted:
        bring_up_loopback()
    sc.sethostname(plan.hostname)
    mounts.apply(plan.box_ops, "/", step="mounts")
    _place_files(plan)
    if plan.sync_r >= 0:
        # The parent attaches the granted network to this namespace, then lets us go on.
        if os.read(plan.sync_r, 1) != b"1":
            raise SandboxError("network", "read(sync)", 0, "launcher did not attach the network")
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        run_program(plan)
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
    _send_result(plan.result_w, status, wall, files)


def _place_files(plan: ChildPlan) -> None:
    for path, content, mode in plan.files:
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            _makedirs_owned(parent, plan.user)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
            os.write(fd, content)
            os.fchmod(fd, mode)
            os.fchown(fd, plan.user.uid, plan.user.gid)
            os.close(fd)
        except OSError as e:
            raise SandboxError("files", f"open({path})", e.errno or 0) from e


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


def _send_result(fd: int, status: int, wall: float, files: dict[str, bytes | str]) -> None:
    header = {"status": status, "wall": wall, "files": {}}
    blobs: list[bytes] = []
    for path, data in files.items():
        if isinstance(data, bytes):
            header["files"][path] = len(data)  # type: ignore[index]
            blobs.append(data)
        else:
            header["files"][path] = data  # type: ignore[index]
    raw = json.dumps(header).encode()
    os.write(fd, struct.pack("<I", len(raw)) + raw)
    for blob in blobs:
        view = memoryview(blob)
        while view:
            n = os.write(fd, view)
            view = view[n:]


def run_program(plan: ChildPlan) -> NoReturn:
    """The program's process: cgroup, rlimits, stdio, identity, capabilities, no_new_privs,
    seccomp, execve. seccomp comes last: after it, only what the profile allows works."""
    try:
        join_in_child(list(plan.cgroup_fds))
        # Joined first, so the cgroup namespace's root is the box's own cgroup.
        sc.unshare(sc.CLONE_NEWCGROUP, step="cgroup namespace")
        os.setsid()
        os.dup2(plan.stdin_fd, 0)
        os.dup2(plan.stdout_w, 1)
        os.dup2(plan.stderr_w, 2)
        os.closerange(3, plan.report_w)
        os.closerange(plan.report_w + 1, 1 << 16)
        rlimits.apply_in_child(list(plan.rlimits))
        os.chdir("/box")
        os.setgroups([])
        os.setresgid(plan.user.gid, plan.user.gid, plan.user.gid)
        caps.drop_bounding_in_child(plan.last_cap)
        os.setresuid(plan.user.uid, plan.user.uid, plan.user.uid)
        caps.clear_all_in_child()
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1, step="no_new_privs")
        plan.seccomp_install()  # type: ignore[operator]
    except SandboxError as e:
        report(plan.report_w, "setup", e.describe())
        os._exit(EXEC_FAILED)
    except OSError as e:
        report(plan.report_w, "setup", f"program setup: {e}")
        os._exit(EXEC_FAILED)
    try:
        os.execvpe(plan.argv[0], list(plan.argv), plan.env)
    except OSError as e:
        report(plan.report_w, "exec", f"execve({plan.argv[0]}): {e.strerror}")
    os._exit(EXEC_FAILED)
