"""Stdio: the caller's own fds for a box's stdin and stdout, shared by every tier's backend."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.spec import BoxSpec


@dataclass(frozen=True)
class Stdio:
    """The caller's own fds for the program's stdin and stdout; -1 means the default.
    With owned, run() closes them as soon as the box holds its own copies, so the other end
    of a pipe sees EOF exactly when the box's program is done with it."""

    stdin_fd: int = -1
    stdout_fd: int = -1
    owned: bool = False
    # Called with (1 or 2, bytes) for each piece of captured output as it arrives, already
    # within the output cap (the container and gVisor tiers; a microVM's comes at the end).
    # It runs on the watcher's thread: it must not block (hand the bytes to a queue).
    echo: Callable[[int, bytes], None] | None = None


def sealed_memfd(data: bytes) -> int:
    """stdin as a sealed memfd: the program can seek it and can never change it."""
    fd = os.memfd_create("stdin", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    seals = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


class CappedOutput:
    """stdout and stderr of a box, capped together at the spec's output_bytes; a chunk past
    the cap is cut and the box killed for "output" (each tier's own _kill)."""

    spec: BoxSpec
    out: bytearray
    err: bytearray
    echo: Callable[[int, bytes], None] | None = None

    def _kill(self, why: str) -> None:
        raise NotImplementedError

    def _capture(self, buf: bytearray, chunk: bytes) -> None:
        room = self.spec.limits.output_bytes - len(self.out) - len(self.err)
        kept = chunk[: max(room, 0)]
        buf += kept
        if kept and self.echo is not None:
            self.echo(1 if buf is self.out else 2, kept)
        if len(chunk) > room:
            self._kill("output")

    @property
    def output_full(self) -> bool:
        return len(self.out) + len(self.err) >= self.spec.limits.output_bytes
