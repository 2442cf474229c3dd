"""Latency of the cgroup layer on this host: create+destroy and stat reads."""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable

from sandbox.cgroups import CgroupLimits, CgroupManager, probe

RUNS = 200
LIMITS = CgroupLimits(memory_bytes=256 << 20, pids=64)
SEQ = itertools.count()


def ms(samples: list[float]) -> str:
    s = sorted(samples)
    return f"median {s[len(s) // 2] * 1e3:.3f} ms, p95 {s[int(len(s) * 0.95)] * 1e3:.3f} ms"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cycle(manager: CgroupManager, label: str, box_s: float) -> None:
    """create, first stat reads, (a box's run time), destroy; only our calls are timed."""
    create, stats, destroy = [], [], []
    for _ in range(RUNS):
        start = time.perf_counter()
        cg = manager.create(f"bench-{os.getpid()}-{next(SEQ)}", LIMITS)
        create.append(time.perf_counter() - start)
        time.sleep(box_s)
        start = time.perf_counter()
        cg.cpu_time_s(), cg.memory_peak_bytes(), cg.oom_killed()
        stats.append(time.perf_counter() - start)
        destroy.append(timed(cg.destroy))
    both = [a + b for a, b in zip(create, destroy, strict=True)]
    print(f"{label}: create {ms(create)}; destroy {ms(destroy)}")
    print(f"{label}: create+destroy {ms(both)}; 3 stat reads {ms(stats)}")


def main() -> int:
    manager = probe()
    print(f"cgroup v{manager.version}, {RUNS} runs each")
    try:
        cycle(manager, "back-to-back", 0.0)
        # 3 ms stands for a box's run. Any idle gap makes the next syscalls slower on this
        # VM (vCPU wake-up).
        cycle(manager, "3 ms apart", 0.003)
        cg = manager.create(f"bench-{os.getpid()}-{next(SEQ)}", LIMITS)
        cg.cpu_time_s()
        print(f"warm cpu_time_s {ms([timed(cg.cpu_time_s) for _ in range(2000)])}")
        cg.destroy()
    finally:
        manager.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
