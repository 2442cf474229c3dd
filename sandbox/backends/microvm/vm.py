"""One QEMU process: started unprivileged in its own host cgroup and namespaces (jail.py),
spoken to over its serial channel, killed and waited for. The thin layer that makes the calls;
plans are elsewhere."""

from __future__ import annotations

import dataclasses
import functools
import grp
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox import syscalls
from sandbox.backends.microvm import jail as jail_mod
from sandbox.backends.microvm import protocol
from sandbox.backends.microvm.jail import INITRAMFS, KERNEL, JailPlan
from sandbox.backends.microvm.qemu_plan import VmPlan, qemu_argv
from sandbox.cgroups import BoxCgroup, join_in_child
from sandbox.errors import SandboxError
from sandbox.slots import Slot


@dataclass(frozen=True)
class Owner:
    """Who QEMU runs as, and the host cgroup that caps it."""

    slot: Slot
    cgroup: BoxCgroup


def _groups(plan: VmPlan) -> list[int]:
    """QEMU's only supplementary group: kvm, to open /dev/kvm, when it runs on KVM."""
    if plan.accel != "kvm":
        return []
    try:
        return [grp.getgrnam("kvm").gr_gid]
    except KeyError:
        return []


def _copy_out(ours: socket.socket) -> None:
    """Until QEMU ends: the guest's console to our stderr."""
    with ours:
        while data := ours.recv(4096):
            sys.stderr.buffer.write(data)
            sys.stderr.flush()


class VmError(SandboxError):
    """The VM or its agent failed; describe() names the step and what QEMU said."""


def _preexec(
    cg_fds: list[int], jail: JailPlan, uid: int, gid: int, groups: list[int], report_fd: int
) -> Callable[[], None]:
    def run() -> None:
        # cgroup first, while still root and before QEMU allocates anything (the clone is
        # born in it); then the namespaces and the root, which need root; then the
        # credentials; the death signal last, because a credential change clears it
        # (prctl(2) PR_SET_PDEATHSIG): QEMU must never outlive the launcher.
        try:
            join_in_child(cg_fds)
            jail_mod.clone_into_namespaces(report_fd)
            jail_mod.enter_root(jail)
            os.setgroups(groups)
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
        except SandboxError as e:
            _report_and_exit(report_fd, e.describe())
        except OSError as e:
            _report_and_exit(report_fd, f"qemu jail: credentials: {os.strerror(e.errno or 0)}")

    return run


def _report_and_exit(fd: int, text: str) -> None:
    os.write(fd, b"E" + text.encode("utf-8", "replace")[:1000] + b"\n")
    os._exit(126)


class _Qemu:
    """QEMU's process: the launcher's child (CLONE_PARENT) though not Popen's, so it is
    waited for and killed here, through a pidfd (no pid reuse can misdirect a kill)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._pidfd = os.pidfd_open(pid)
        self._lock = threading.Lock()
        self.returncode: int | None = None

    def poll(self) -> int | None:
        with self._lock:
            if self.returncode is None:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired("qemu", timeout or 0.0)
            # The pidfd is readable once the process has exited (pidfd_open(2)).
            select.select([self._pidfd], [], [], left)
        return code

    def kill(self) -> None:
        with self._lock:
            if self.returncode is None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def close(self) -> None:
        """After wait(): the pidfd goes."""
        os.close(self._pidfd)


def _spawn(
    plan: VmPlan, jail: JailPlan, preexec: Callable[[int], Callable[[], None]], **popen: Any
) -> _Qemu:
    """Popen's fork and exec, with QEMU cloned into its jail between the two: the child
    Popen made reports QEMU's pid (or the step that failed) on a pipe and exits at once."""
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    failure: OSError | subprocess.SubprocessError | None = None
    try:
        argv = qemu_argv(dataclasses.replace(plan, vmlinux=KERNEL, initramfs=INITRAMFS))
        child = subprocess.Popen(argv, executable=jail.qemu, preexec_fn=preexec(report_w), **popen)
        child.wait()  # it exits right after the clone; QEMU is its sibling
    except (OSError, subprocess.SubprocessError) as e:
        failure = e  # execve failed in QEMU's clone, which has exited
    finally:
        os.close(report_w)
    said = b""
    try:
        while chunk := os.read(report_r, 4096):
            said += chunk
    finally:
        os.close(report_r)
    lines = said.splitlines()
    pid = next((int(line[1:]) for line in lines if line[:1] == b"P"), 0)
    error = next((line[1:].decode("utf-8", "replace") for line in lines if line[:1] == b"E"), "")
    if pid and (error or failure):
        os.waitpid(pid, 0)
    if failure is not None:
        raise VmError("vm", f"execve({jail.qemu})", getattr(failure, "errno", 0) or 0) from failure
    if error or not pid:
        raise VmError("vm", "clone(qemu)", 0, error or "no QEMU was cloned")
    return _Qemu(pid)


class Vm:
    """A started VM. Every method that waits takes an absolute monotonic deadline."""

    def __init__(
        self,
        plan: VmPlan,
        jail: JailPlan,
        owner: Owner,
        pass_fds: tuple[int, ...],
        label: str,
        debug: bool = False,
    ) -> None:
        self.owner = owner
        self.label = label
        self.started = time.monotonic()
        self.booted_s = 0.0
        self._reader = protocol.FrameReader()
        self._pending: list[tuple[int, bytes]] = []
        host, guest = socket.socketpair()
        err_r, err_w = os.pipe()
        cg_fds = owner.cgroup.join_fds()
        theirs: socket.socket | None = None
        if debug:  # the guest kernel's console, copied to our stderr as it comes
            ours, theirs = socket.socketpair()
            plan = dataclasses.replace(plan, console_fd=theirs.fileno())
            pass_fds = (*pass_fds, theirs.fileno())
            threading.Thread(target=_copy_out, args=(ours,), daemon=True).start()
        self._sock = host
        self._err = err_r
        groups = _groups(plan)
        try:
            self._proc = _spawn(
                plan,
                jail,
                functools.partial(_preexec, cg_fds, jail, owner.slot.uid, owner.slot.gid, groups),
                stdin=guest.fileno(),
                stdout=guest.fileno(),
                stderr=err_w,
                pass_fds=pass_fds,
                env={"PATH": "/usr/bin:/bin"},
            )
        except VmError:
            host.close()
            os.close(err_r)
            raise
        finally:
            guest.close()
            os.close(err_w)
            if theirs is not None:
                theirs.close()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _next(self, deadline: float, step: str) -> tuple[int, bytes]:
        while not self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise VmError(step, "read(channel)", 0, "timed out waiting for the guest agent")
            ready, _, _ = select.select([self._sock], [], [], left)
            if not ready:
                continue
            data = self._sock.recv(1 << 16)
            if not data:
                raise VmError(step, "read(channel)", 0, f"QEMU ended: {self._exit_text()}")
            try:
                self._pending += self._reader.feed(data)
            except protocol.ProtocolError as e:
                raise VmError(step, "read(channel)", 0, f"the guest broke the protocol: {e}") from e
        return self._pending.pop(0)

    def wait_ready(self, deadline: float) -> None:
        """Until the agent says HELLO (booted, or done warming up)."""
        while True:
            kind, payload = self._next(deadline, "boot")
            if kind == protocol.HELLO:
                self.booted_s = time.monotonic() - self.started
                return
            if kind == protocol.FAIL:
                raise VmError("guest agent", "boot", 0, payload.decode("utf-8", "replace"))

    def send(self, kind: int, payload: bytes) -> None:
        try:
            self._sock.sendall(protocol.frame(kind, payload))
        except OSError as e:
            raise VmError("job", "write(serial)", e.errno or 0, "the VM is gone") from e

    def outcome(self, out: protocol.Outcome, deadline: float) -> protocol.Outcome:
        """Frames into `out` until the agent's RESULT or FAIL. A deadline passed is the host's
        wall kill: the outcome comes back not done, with what the program printed so far."""
        while not out.done:
            try:
                kind, payload = self._next(deadline, "job")
            except VmError as e:
                if time.monotonic() >= deadline:
                    return out
                raise e
            try:
                out.take(kind, payload)
            except protocol.ProtocolError as e:
                detail = f"the guest broke the protocol: {e}"
                raise VmError("job", "read(channel)", 0, detail) from e
        return out

    def _exit_text(self) -> str:
        try:
            code: int | None = self._proc.wait(timeout=1.0)  # EOF comes just before the exit
        except subprocess.TimeoutExpired:
            code = None
        err = b""
        try:
            os.set_blocking(self._err, False)
            err = os.read(self._err, 4096)
        except OSError:
            pass
        said = err.decode("utf-8", "replace").strip().splitlines()
        tail = said[-1] if said else "nothing on stderr"
        return f"exit status {code}: {tail}"

    def terminate(self) -> None:
        """SIGKILL QEMU now, from any thread; whoever holds the VM still calls kill()."""
        if self._proc.poll() is None:
            self._proc.kill()

    def kill(self) -> None:
        """SIGKILL QEMU, reap it, close the channel; the owner's cgroup and slot stay with
        the caller, who gives them back."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc.close()
        self._sock.close()
        os.close(self._err)
