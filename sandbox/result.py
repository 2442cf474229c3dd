"""BoxResult and Status: the outcome of one box, classified from wait status and cgroup stats."""

from __future__ import annotations

import dataclasses
import enum
import os
import signal
from dataclasses import dataclass
from typing import Any


class Status(enum.StrEnum):
    """isolate's outcome taxonomy plus MLE and OLE."""

    OK = "OK"  # exited 0
    RE = "RE"  # exited non-zero
    SG = "SG"  # killed by a signal
    TO = "TO"  # CPU or wall time limit
    MLE = "MLE"  # memory limit (cgroup OOM kill)
    OLE = "OLE"  # output limit
    XX = "XX"  # the sandbox itself failed


@dataclass(frozen=True)
class BoxResult:
    status: Status
    exit_code: int | None
    signal: int | None
    time: float  # CPU seconds of every process in the box
    wall_time: float
    memory: int  # peak bytes
    stdout: bytes
    stderr: bytes
    message: str
    # Collected files by box path, and for each one not collected the reason (a symlink,
    # not a regular file, over the size cap, missing).
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)
    files_refused: dict[str, str] = dataclasses.field(default_factory=dict)
    # What ran the box: "container", "gvisor/ptrace", "microvm/tcg" and so on.
    runtime: str = "container"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "time": round(self.time, 4),
            "wall_time": round(self.wall_time, 4),
            "memory": self.memory,
            "stdout": self.stdout.decode("utf-8", "replace"),
            "stderr": self.stderr.decode("utf-8", "replace"),
            "message": self.message,
            "runtime": self.runtime,
        }


def failed(message: str, wall_time_s: float, runtime: str = "container") -> BoxResult:
    """The sandbox itself failed (XX); the message names the step and the syscall."""
    return BoxResult(
        status=Status.XX,
        exit_code=None,
        signal=None,
        time=0.0,
        wall_time=wall_time_s,
        memory=0,
        stdout=b"",
        stderr=b"",
        message=message,
        runtime=runtime,
    )


@dataclass(frozen=True)
class Observed:
    """What the launcher saw; classify() turns it into a status and a message."""

    wait_status: int | None  # raw wait status of the program, None if never started
    cpu_time_s: float
    wall_time_s: float
    oom_killed: bool
    output_exceeded: bool
    wall_exceeded: bool
    cpu_limit_s: float
    wall_limit_s: float
    exec_error: str = ""


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def classify(obs: Observed) -> tuple[Status, int | None, int | None, str]:
    """(status, exit_code, signal, message). Order matters: a limit breach outranks the signal
    that the kernel or the launcher used to enforce it."""
    code: int | None = None
    sig: int | None = None
    if obs.wait_status is not None:
        if os.WIFEXITED(obs.wait_status):
            code = os.WEXITSTATUS(obs.wait_status)
        elif os.WIFSIGNALED(obs.wait_status):
            sig = os.WTERMSIG(obs.wait_status)
    if obs.exec_error:
        msg = f"Cannot run the program: {obs.exec_error}"
        return Status.RE, code if code is not None else 127, None, msg
    if obs.output_exceeded:
        return Status.OLE, code, sig, "Output limit exceeded"
    if obs.cpu_time_s >= obs.cpu_limit_s or sig == signal.SIGXCPU:
        return Status.TO, code, sig, f"Time limit exceeded ({obs.cpu_time_s:.3f} s of CPU)"
    if obs.wall_exceeded:
        return Status.TO, code, sig, f"Time limit exceeded (wall clock, {obs.wall_limit_s:g} s)"
    if obs.oom_killed:
        return Status.MLE, code, sig, "Memory limit exceeded"
    if sig is not None:
        if sig == signal.SIGXFSZ:
            return Status.SG, None, sig, "File size limit exceeded (SIGXFSZ)"
        return Status.SG, None, sig, f"Killed by signal {sig} ({signal_name(sig)})"
    if code == 0:
        return Status.OK, 0, None, "Exited normally"
    return Status.RE, code, None, f"Exited with code {code}"


def judged(
    obs: Observed,
    memory: int,
    stdout: bytes,
    stderr: bytes,
    files: dict[str, bytes] | None = None,
    refused: dict[str, str] | None = None,
    runtime: str = "container",
) -> BoxResult:
    """The BoxResult of what a tier observed: one classification for every tier."""
    status, code, sig, message = classify(obs)
    return BoxResult(
        status=status,
        exit_code=code,
        signal=sig,
        time=obs.cpu_time_s,
        wall_time=obs.wall_time_s,
        memory=memory,
        stdout=stdout,
        stderr=stderr,
        message=message,
        files=files or {},
        files_refused=refused or {},
        runtime=runtime,
    )
