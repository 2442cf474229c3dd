"""The gVisor tier's wait on one `runsc run`: pipes drained, output capped, the CPU baseline
taken when the program starts, CPU, wall and memory limits enforced from the host.

The program's memory is the box cgroup's shmem: the Sentry keeps every page of the program
(its heap, stacks, tmpfs and the file pages it reads) in one memfd, its memory file, which
is charged to the cgroup as shared memory; the Sentry's and the gofer's own Go heaps are
anonymous memory beside it (13 MB here). Measured with Python holding 0, 50 and 100 MB:
shmem peaked at 4, 54 and 104 MB where a container box reported 3, 53 and 103. The
cgroup has no high-water mark for shmem, so it is sampled every MEMORY_POLL_S while the
program runs; the cgroup's own limit (the program's plus the Sentry's allowance) stays the
kernel's backstop."""

from __future__ import annotations

import os
import select
import signal
import time

from sandbox import cgroups
from sandbox.errors import SandboxError
from sandbox.spec import BoxSpec
from sandbox.stdio import CappedOutput

_READ_CHUNK = 1 << 16
_CPUS = os.cpu_count() or 1
# How long runsc may take to boot the Sentry and the gofer (about 0.15 s on ptrace here;
# the kvm platform hangs on this host, which this bound turns into an error).
SETUP_TIMEOUT_S = 10.0
_SETUP_POLL_S = 0.002  # the pid file is looked for this often until the program starts
_GIVE_UP_S = 5.0
# A page of the program's is touched through a Sentry fault on the ptrace platform: 10 ms
# is a few MB at most, and reading memory.stat costs about 30 us of the watcher's CPU. The
# first 0.5 s is sampled five times as often (at most 250 reads, 8 ms of the watcher's CPU):
# most programs of a judge end within it, Python's start alone takes 0.1-0.2 s under the
# Sentry, and the memory file is gone with the Sentry, so a late sample cannot be had. With
# 0.1 s, a Python program holding 40 MB for its last few ms was once reported at 20 MB.
MEMORY_POLL_S = 0.01
EARLY_POLL_S, EARLY_S = 0.002, 0.5


class RunscWatch(CappedOutput):
    """Waits for `runsc run` and the pipes. The program starts when runsc writes the pid
    file (create done, start next): the wall clock and the CPU baseline start there."""

    def __init__(
        self,
        spec: BoxSpec,
        cg: cgroups.BoxCgroup,
        runsc_pidfd: int,
        pid_file: str,
        out_r: int,
        err_r: int,
        started: float,
    ) -> None:
        self.spec, self.cg = spec, cg
        self.runsc_pidfd = runsc_pidfd
        self.pid_file = pid_file
        self.started = started
        self.app_started = 0.0  # monotonic time the pid file was seen
        self.app_ended = 0.0
        self.cpu_baseline_s = 0.0
        self.memory_peak = 0  # the highest shmem seen while the program ran
        self.out = bytearray()
        self.err = bytearray()
        self.killed_for = ""  # "wall", "cpu", "memory", "output" or "setup"
        self._fds = {fd: buf for fd, buf in ((out_r, self.out), (err_r, self.err)) if fd >= 0}

    def cpu_time_s(self) -> float:
        """CPU time of the host cgroup since the program was started; see gvisor.py."""
        if not self.app_started:
            return 0.0
        return max(self.cg.cpu_time_s() - self.cpu_baseline_s, 0.0)

    def loop(self) -> None:
        poller = select.poll()
        for fd in self._fds:
            poller.register(fd, select.POLLIN)
        poller.register(self.runsc_pidfd, select.POLLIN)
        open_fds = set(self._fds)
        runsc_done = False
        give_up = float("inf")
        while open_fds or not runsc_done:
            now = time.monotonic()
            if now >= give_up:
                raise SandboxError("gvisor: watch", "poll", 0, "runsc did not end after SIGKILL")
            timeout = self._check_limits(now)
            if self.killed_for and give_up == float("inf"):
                give_up = now + _GIVE_UP_S
            if runsc_done and give_up == float("inf"):
                # runsc is gone, so is its sandbox; what still holds a pipe is killed.
                self.cg.kill_all()
                give_up = now + _GIVE_UP_S
            if give_up != float("inf"):
                timeout = min(max(give_up - now, 0.0), 0.05)
            for fd, _ in poller.poll(timeout * 1000 + 1):
                if fd == self.runsc_pidfd:
                    poller.unregister(fd)
                    runsc_done = True
                    self.app_ended = self.app_ended or time.monotonic()
                elif not self._drain(fd):
                    poller.unregister(fd)
                    open_fds.discard(fd)

    def _check_limits(self, now: float) -> float:
        """Kill on a breach; the time until the next check is due."""
        if self.killed_for:
            return 0.05
        lim = self.spec.limits
        if not self.app_started:
            if os.path.exists(self.pid_file):
                self.cpu_baseline_s = self.cg.cpu_time_s()
                self.app_started = now
            elif now - self.started >= SETUP_TIMEOUT_S:
                self._kill("setup")
                return 0.05
            else:
                return _SETUP_POLL_S
        deadline = self.app_started + lim.wall_time_s
        if now >= deadline:
            self._kill("wall")
            return 0.05
        used = self.cpu_time_s()
        if used >= lim.cpu_time_s:
            self._kill("cpu")
            return 0.05
        self.memory_peak = max(self.memory_peak, self.cg.shmem_bytes())
        if self.memory_peak > lim.memory_bytes:
            self._kill("memory")
            return 0.05
        # The soonest the CPU limit can be reached with every core busy.
        cpu_due = max((lim.cpu_time_s - used) / _CPUS, 0.005)
        poll = EARLY_POLL_S if now - self.app_started < EARLY_S else MEMORY_POLL_S
        return min(deadline - now, cpu_due, poll)

    def _drain(self, fd: int) -> bool:
        chunk = os.read(fd, _READ_CHUNK)
        if not chunk:
            return False
        self._capture(self._fds[fd], chunk)
        return True

    def _kill(self, why: str) -> None:
        """Everything in the box cgroup: the Sentry, the gofer and the ptrace stubs (the
        program's code runs in the stubs). `runsc run` sees its sandbox die and exits; it
        is killed too while it is still setting up (it may not have made the sandbox yet)."""
        self.killed_for = why
        self.app_ended = time.monotonic()
        if why == "setup":
            kill_pidfd(self.runsc_pidfd)
        self.cg.kill_all()


def kill_pidfd(pidfd: int) -> None:
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass
