"""Thin cgroupfs file layer: one-shot writes, small reads, rmdir with retry, SIGKILL sweeps."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.errors import SandboxError

STEP = "cgroup"
# O_CLOEXEC on every fd: a forked box child inherits them anyway (fork copies the table),
# and execve then drops them, so the untrusted program never holds a cgroup file.
O_WRITE = os.O_WRONLY | os.O_CLOEXEC
O_READ = os.O_RDONLY | os.O_CLOEXEC
# Every cgroup stat file we read (cpu.stat, memory.events, oom_control, one counter) is far
# below a page; cgroupfs (kernfs seq_file) returns the whole text in one read at offset 0.
SMALL = 4096
FREEZE_TIMEOUT_S = 0.5  # a task in D state can hold a freeze back; then kill anyway
KILL_TIMEOUT_S = 2.0  # SIGKILLed tasks normally leave cgroup.procs within milliseconds
RMDIR_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class CgroupOps:
    """The operations where cgroupfs differs from a plain directory: mkdir creates the
    interface files, rmdir works on a "non-empty" directory, and kill reaches real
    processes. Tests swap in a fake kernel; production uses the defaults."""

    mkdir: Callable[[str], None] = os.mkdir
    rmdir: Callable[[str], None] = os.rmdir
    kill: Callable[[int, int], None] = os.kill


def fail(call: str, err: OSError, detail: str = "") -> SandboxError:
    return SandboxError(STEP, call, err.errno or 0, detail)


def write_file(path: str, data: bytes) -> None:
    """open + write + close; the error names the file and the value. O_TRUNC as a shell's
    `echo v > file` does: cgroupfs ignores it, and a fake tree then holds the last value."""
    try:
        fd = os.open(path, O_WRITE | os.O_TRUNC)
    except OSError as e:
        raise fail(f"open({path})", e) from e
    try:
        os.write(fd, data)
    except OSError as e:
        raise fail(f"write({path}, {data.decode(errors='replace')})", e) from e
    finally:
        os.close(fd)


def open_read(path: str) -> int:
    try:
        return os.open(path, O_READ)
    except OSError as e:
        raise fail(f"open({path})", e) from e


def pread_small(fd: int, path: str) -> bytes:
    """Re-read a cgroup file from offset 0: a fresh snapshot on every call (seq_file
    regenerates the text when the offset goes back to 0)."""
    try:
        return os.pread(fd, SMALL, 0)
    except OSError as e:
        raise fail(f"pread({path})", e) from e


def read_file(path: str) -> bytes:
    """Whole file, any length (cgroup.procs of a fork bomb can pass a page)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise fail(f"read({path})", e) from e


def parse_keyed(text: bytes) -> dict[str, int]:
    """Lines of "key value" (cpu.stat, memory.events, memory.oom_control) -> dict."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(b" ")
        if value.strip().lstrip(b"-").isdigit():
            out[key.decode()] = int(value)
    return out


def parse_int(text: bytes) -> int:
    """One counter ("123\\n"); v2's "max" means unlimited and reads as -1."""
    word = text.strip()
    return -1 if word == b"max" else int(word)


def parse_pids(text: bytes) -> list[int]:
    return [int(w) for w in text.split()]


def wait_until(done: Callable[[], bool], timeout_s: float) -> bool:
    """Poll with a growing sleep (0.2 ms to 10 ms); True once done() holds."""
    deadline = time.monotonic() + timeout_s
    pause = 0.0002
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.01)
    return True


def kill_listed(procs_path: str, ops: CgroupOps) -> int:
    """SIGKILL every pid in one cgroup.procs; returns how many were listed. The pids are in
    our own pid namespace (cgroup.procs translates them for the reader)."""
    pids = parse_pids(read_file(procs_path))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # exited since the read
            ops.kill(pid, signal.SIGKILL)
    return len(pids)


def drain(procs_path: str, ops: CgroupOps, timeout_s: float) -> None:
    """SIGKILL what is listed until cgroup.procs reads empty. Each pass can only shrink the
    set: a task with a fatal signal pending never completes a fork (copy_process checks)."""
    if not wait_until(lambda: kill_listed(procs_path, ops) == 0, timeout_s):
        left = read_file(procs_path).split()
        raise SandboxError(
            STEP, "kill(SIGKILL)", errno.EBUSY, f"{len(left)} processes survive in {procs_path}"
        )


def rmdir_all(
    paths: list[str], ops: CgroupOps, on_busy: Callable[[], None], timeout_s: float
) -> None:
    """rmdir each cgroup; on the first EBUSY (tasks still attached) call on_busy() once,
    then retry until the deadline. Missing directories count as removed."""
    deadline = time.monotonic() + timeout_s
    called = False
    for path in paths:
        while True:
            try:
                ops.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise fail(f"rmdir({path})", e) from e
                if not called:
                    called = True
                    on_busy()
                    continue
                if time.monotonic() >= deadline:
                    raise fail(f"rmdir({path})", e, "tasks still attached") from e
                time.sleep(0.001)
