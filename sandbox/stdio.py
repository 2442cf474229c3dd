"""Stdio: the caller's own fds for a box's stdin and stdout, shared by every tier's backend."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stdio:
    """The caller's own fds for the program's stdin and stdout; -1 means the default.
    With owned, run() closes them as soon as the box holds its own copies, so the other end
    of a pipe sees EOF exactly when the box's program is done with it."""

    stdin_fd: int = -1
    stdout_fd: int = -1
    owned: bool = False
