"""The launcher's wait on one box: pipes drained, output capped, CPU and wall limits enforced."""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import time

from sandbox import cgroups
from sandbox.errors import SandboxError
from sandbox.spec import BoxSpec
from sandbox.stdio import CappedOutput

_READ_CHUNK = 1 << 16
_CPUS = os.cpu_count() or 1


class Watch(CappedOutput):
    """The launcher's wait: pipes drained, output capped, CPU and wall limits enforced.
    The box is over when all three pipes reach EOF: init closes the result pipe only when
    it exits, after it killed whatever the program left behind."""

    def __init__(
        self,
        spec: BoxSpec,
        cg: cgroups.BoxCgroup,
        pidfd: int,
        started: float,
        out_r: int,
        err_r: int,
        res_r: int,
    ) -> None:
        self.spec, self.cg, self.pidfd = spec, cg, pidfd
        self.deadline = started + spec.limits.wall_time_s
        self.out = bytearray()
        self.err = bytearray()
        self.res = bytearray()
        self.killed_for = ""
        self._fds = {out_r: self.out, err_r: self.err, res_r: self.res}
        self._fds.pop(-1, None)  # stdout went to the caller's pipe

    def loop(self) -> None:
        lim = self.spec.limits
        poller = select.poll()
        for fd in self._fds:
            poller.register(fd, select.POLLIN)
        open_fds = set(self._fds)
        give_up = float("inf")
        while open_fds:
            now = time.monotonic()
            if now >= give_up:
                raise SandboxError("watch", "poll", 0, "the box did not end after SIGKILL")
            if now >= self.deadline and not self.killed_for:
                self._kill("wall")
            if self.killed_for and give_up == float("inf"):
                give_up = now + 5.0
            timeout = max(self.deadline - now, 0.0) if not self.killed_for else give_up - now
            if not self.killed_for:
                used = self.cg.cpu_time_s()
                if used >= lim.cpu_time_s:
                    self._kill("cpu")
                    continue
                # The soonest the CPU limit can be reached with every core busy.
                timeout = min(timeout, max((lim.cpu_time_s - used) / _CPUS, 0.005))
            for fd, _ in poller.poll(timeout * 1000 + 1):
                if not self._drain(fd):
                    poller.unregister(fd)
                    open_fds.discard(fd)

    def _drain(self, fd: int) -> bool:
        chunk = os.read(fd, _READ_CHUNK)
        if not chunk:
            return False
        buf = self._fds[fd]
        if buf is self.res:
            buf += chunk
        else:
            self._capture(buf, chunk)
        return True

    def _kill(self, why: str) -> None:
        if not self.killed_for:
            self.killed_for = why
            # Killing a pid namespace's init kills every process in it (pid_namespaces(7)).
            kill(self.pidfd)

    def decode_result(
        self,
    ) -> tuple[dict[str, object] | None, dict[str, bytes], dict[str, str]]:
        """init's record: header, the collected files, and why others were refused."""
        raw = bytes(self.res)
        if len(raw) < 4:
            return None, {}, {}
        (n,) = struct.unpack("<I", raw[:4])
        header = json.loads(raw[4 : 4 + n])
        files: dict[str, bytes] = {}
        refused: dict[str, str] = {}
        pos = 4 + n
        for path, size in header.get("files", {}).items():
            if isinstance(size, int):
                files[path] = raw[pos : pos + size]
                pos += size
            else:
                refused[path] = str(size)
        return header, files, refused


def kill(pidfd: int) -> None:
    """pidfd_send_signal(2): no race with pid reuse; the box's init is not our child."""
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass
