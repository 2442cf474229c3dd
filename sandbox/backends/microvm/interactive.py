"""Caller pipes for an interactive box: the caller's stdin relayed to the guest as STDIN
frames while the program runs, the program's stdout written to the caller's fd as it comes."""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable

from sandbox.backends.microvm import protocol
from sandbox.stdio import Stdio

CHUNK = 1 << 16


class StdinPump:
    """Reads the caller's stdin until EOF and sends it on; close() ends it early (the
    program is done). Owns its fd."""

    def __init__(self, fd: int, send: Callable[[int, bytes], None]) -> None:
        self._fd = fd
        self._send = send
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="microvm-stdin", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                # A short timeout, so close() is seen while the caller writes nothing.
                if not select.select([self._fd], [], [], 0.05)[0]:
                    continue
                data = os.read(self._fd, CHUNK)
                self._send(protocol.STDIN, data)
                if not data:
                    return
        except OSError:
            return  # the VM is gone, or the caller's pipe broke: the box ends without us

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self._fd)


class StdoutSink:
    """Writes the program's stdout to the caller's fd, giving up at the deadline (a caller
    that never reads must not hold the host's wall kill back). Owns its fd."""

    def __init__(self, fd: int, deadline: float) -> None:
        self._fd = fd
        self._deadline = deadline
        self.broken = False

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.broken:
            left = self._deadline - time.monotonic()
            if left <= 0 or not select.select([], [self._fd], [], left)[1]:
                self.broken = True
                return
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                continue
            except OSError:
                self.broken = True  # the caller closed its end (EPIPE): drop the rest

    def close(self) -> None:
        os.close(self._fd)


def take_fds(stdio: Stdio) -> tuple[int, int]:
    """Our own copies of the caller's fds (-1 where none); the caller's go now if owned,
    so the other end of a pipe sees EOF exactly when the box is done with it."""
    fds = tuple(os.dup(fd) if fd >= 0 else -1 for fd in (stdio.stdin_fd, stdio.stdout_fd))
    if stdio.owned:
        for fd in {stdio.stdin_fd, stdio.stdout_fd} - {-1}:
            os.close(fd)
    return fds[0], fds[1]
