"""Run in the lab only (make test-v2): the box's cgroup2 figures against what a static C
program measured itself, on the guest kernel. The v1 run's tests (test_accounting.py,
test_hostile_limits.py) hold the same properties with bounds set for a native CPU and an
interpreter's start-up; here the program starts in a few milliseconds even under TCG, so the
accounting bounds stay the issue's (5% CPU, 10% memory)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import MIB, BoxSpec, FileIn, Limits

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(
        os.environ.get("STOCKADE_IN_V2LAB") != "1",
        reason="needs the cgroup2 lab under systemd (make test-v2)",
    ),
]
SOURCE = Path(__file__).parent.parent / "privileged" / "acct_prog.c"
MB = 1000 * 1000  # 100 * 10**6 bytes are touched: decimal megabytes


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("acct") / "prog"
    argv = ["gcc", "-O2", "-static", "-pthread", "-o", str(out), str(SOURCE)]
    subprocess.run(argv, check=True, timeout=300)
    return out.read_bytes()


def run(launcher: Launcher, prog: bytes, *args: str, limits: Limits | None = None) -> BoxResult:
    files = (FileIn("prog", prog, 0o755),)
    spec = BoxSpec(argv=("/box/prog", *args), files=files, limits=limits or Limits())
    r = launcher.run(spec)
    print(f"v2acct: {args}: time {r.time:.4f} s, wall {r.wall_time:.4f} s, memory {r.memory}")
    return r


# Two seconds of CPU in all, not v1's one: the exec, thread start and exit that the cgroup
# counts beyond the program's clock cost about 15x native under TCG, measured 0.016 to
# 0.050 s over 1 s of work (4 threads the worst: 4.95%, at the bound). Over 2 s the ratio
# measured 1.003 to 1.010 in twelve runs, and the bound is still the 5%.
@pytest.mark.parametrize(("threads", "each_s"), [(1, 2.0), (2, 1.0), (4, 0.5)])
def test_cpu_of_every_thread_within_5_percent_of_the_programs_clock(
    launcher: Launcher, prog: bytes, threads: int, each_s: float
) -> None:
    r = run(launcher, prog, "threads", str(threads), str(each_s))
    assert r.status is Status.OK, r.to_dict()
    own = float(r.stdout)  # CLOCK_PROCESS_CPUTIME_ID: every thread of the program
    assert own >= threads * each_s
    # cpu.stat's usage_usec of the box, the init's own share taken out: the program's clock
    # plus its exec and exit, which a static binary keeps to milliseconds even under TCG.
    print(f"v2acct: the program's own clock {own:.4f} s, the cgroup's / it {r.time / own:.4f}")
    assert abs(r.time - own) <= 0.05 * own, (r.time, own)


def test_peak_memory_within_10_percent_of_what_the_program_touched(
    launcher: Launcher, prog: bytes
) -> None:
    baseline = run(launcher, prog, "touch", "0")
    r = run(launcher, prog, "touch", str(100 * MB))
    assert baseline.status is Status.OK and r.status is Status.OK, r.to_dict()
    touched = int(r.stdout)
    assert touched == 100 * MB, r.stdout
    # memory.peak: the touched pages plus the program's baseline (a static binary's image,
    # stack, page tables), which an empty run measures.
    assert touched <= r.memory <= 1.1 * touched, (r.memory, touched)
    assert baseline.memory < 8 * MB, baseline.to_dict()
    assert abs((r.memory - baseline.memory) - touched) <= 2 * MB, (r.memory, baseline.memory)


def test_wall_time_kill(launcher: Launcher, prog: bytes) -> None:
    limit = 1.0
    started = time.monotonic()
    r = run(launcher, prog, "sleep", "30", limits=Limits(wall_time_s=limit))
    took = time.monotonic() - started
    print(f"v2acct: the wall kill's run took {took:.4f} s")
    assert r.status is Status.TO and "wall" in r.message.lower(), r.to_dict()
    # The kill is the launcher waking at its deadline and writing cgroup.kill, then the
    # kernel's SIGKILL and the init's reap: none of it an exec or an interpreter's start-up,
    # so v1's bounds hold under TCG too (measured in the lab over nine runs: 1.013 to
    # 1.052 s, the whole run 1.016 to 1.055 s).
    assert limit <= r.wall_time <= limit + 0.2, r.to_dict()
    assert took <= limit + 0.3, took
    # A sleeper uses no CPU, so the verdict came from the wall clock. v1 bounds this at 0.1 s;
    # measured here 0.067 to 0.211 s: a kill leaves the box init no chance to report its own
    # share (header["init_cpu"]), so its set-up, ~15x slower under TCG, stays in the figure.
    assert r.time < 0.3, r.to_dict()


def test_memory_bomb_with_swap_is_mle_and_swaps_nothing(launcher: Launcher, prog: bytes) -> None:
    swaps = Path("/proc/swaps").read_text().splitlines()[1:]
    swap_kib = sum(int(line.split()[2]) for line in swaps)
    assert swap_kib >= 256 * 1024, "the lab boots with swap; without it this proves nothing"
    lim = Limits(memory_bytes=64 * MIB, cpu_time_s=10, wall_time_s=30)
    r = run(launcher, prog, "bomb", limits=lim)
    assert r.status is Status.MLE, r.to_dict()
    assert 0.9 * lim.memory_bytes <= r.memory <= 1.05 * lim.memory_bytes, r.to_dict()
    # Every block was written through: had the box any swap, pages would have gone there and
    # the count run past the limit.
    touched = int(r.stdout.split()[-1]) * MIB
    assert 0.75 * lim.memory_bytes <= touched <= lim.memory_bytes, (touched, r.to_dict())
