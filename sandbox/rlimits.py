"""Resource limits (setrlimit(2)): a plan from Limits, applied in the child before execve."""

from __future__ import annotations

import math
import resource

from sandbox.errors import SandboxError
from sandbox.spec import Limits


def plan(limits: Limits) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) triples. RLIMIT_CPU is a per-process backstop to the cgroup's
    all-process accounting: SIGXCPU at the soft limit, SIGKILL at the hard one."""
    cpu_soft = math.ceil(limits.cpu_time_s) + 1
    stack = limits.stack_bytes if limits.stack_bytes is not None else limits.memory_bytes
    return [
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_CPU, cpu_soft, cpu_soft + 1),
        (resource.RLIMIT_FSIZE, limits.fsize_bytes, limits.fsize_bytes),
        (resource.RLIMIT_NOFILE, limits.nofile, limits.nofile),
        (resource.RLIMIT_STACK, stack, stack),
        # Locked memory would escape nothing (the cgroup counts it) but bounds mlock abuse.
        (resource.RLIMIT_MEMLOCK, 64 * 1024, 64 * 1024),
        (resource.RLIMIT_MSGQUEUE, 0, 0),
        # Per-uid process cap as a second fence behind pids.max: each slot has its own uid.
        (resource.RLIMIT_NPROC, limits.pids * 2 + 16, limits.pids * 2 + 16),
    ]


def apply_in_child(items: list[tuple[int, int, int]]) -> None:
    for res, soft, hard in items:
        try:
            resource.setrlimit(res, (soft, hard))
        except (OSError, ValueError) as e:
            raise SandboxError(
                "rlimits", f"setrlimit({res}, {soft}, {hard})", getattr(e, "errno", 0) or 0
            ) from e
