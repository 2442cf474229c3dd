"""Box latency side by side in one run: bare fork+exec, a warm Stockade box and bubblewrap."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from sandbox.launcher import Launcher
from sandbox.result import Status
from sandbox.spec import BoxSpec

TARGET_RATIO = 0.9  # issue 2: median Stockade latency at most 0.9x bubblewrap's
TRUE = ("/bin/true",)
PYTHON = ("/usr/bin/python3", "-c", "pass")
# What a box's program gets (launcher._box_env); the bare and bwrap children get the same.
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/", "LANG": "C.UTF-8"}
BWRAP = "/usr/bin/bwrap"
# Namespaces and root comparable to a Stockade box: --unshare-all is user, ipc, pid, net, uts
# and cgroup; read-only /usr with the merged-/usr symlinks; fresh /proc, minimal /dev, tmpfs
# /tmp and /box; an unprivileged uid/gid mapped in its user namespace; no capabilities.
# It has no cgroup limits, no seccomp filter, no rlimits and no per-box /etc files.
BWRAP_ARGS = (
    BWRAP,
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--ro-bind", "/usr", "/usr",
    "--symlink", "usr/lib", "/lib",
    "--symlink", "usr/lib64", "/lib64",
    "--symlink", "usr/bin", "/bin",
    "--ro-bind", "/etc/alternatives", "/etc/alternatives",
    "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache",
    "--proc", "/proc",
    "--dev", "/dev",
    "--tmpfs", "/tmp",
    "--tmpfs", "/box",
    "--chdir", "/box",
    "--hostname", "box",
    "--uid", "60999",
    "--gid", "60999",
    "--cap-drop", "ALL",
)  # fmt: skip


class BenchError(Exception):
    pass


@dataclass
class Contender:
    """One single-box latency measured once per round."""

    key: str
    label: str
    run: Callable[[], None]
    samples: list[float] = field(default_factory=list)  # ms
    after_stockade: list[float] = field(default_factory=list)  # ms, right after a Stockade box
    after_other: list[float] = field(default_factory=list)  # ms


@dataclass
class Burst:
    """Boxes run as fast as they go: back to back, or on parallel slots."""

    key: str
    label: str
    threads: int
    run: Callable[[], None]
    wall_s: float = 0.0
    boxes: int = 0
    samples: list[float] = field(default_factory=list)  # ms per box


def spawn_wait(argv: tuple[str, ...]) -> None:
    """posix_spawn(2) + waitpid(2): what a launcher written in C would pay at the least."""
    pid = os.posix_spawn(argv[0], argv, ENV)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise BenchError(f"{' '.join(argv)}: wait status {status:#x}")


def fork_exec(argv: tuple[str, ...]) -> None:
    """fork(2) + execve(2) + waitpid(2), no subprocess module."""
    pid = os.fork()
    if pid == 0:
        try:
            os.execve(argv[0], argv, ENV)
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise BenchError(f"{' '.join(argv)}: wait status {status:#x}")


def stockade_box(lau: Launcher, spec: BoxSpec) -> None:
    res = lau.run(spec)
    if res.status != Status.OK:
        raise BenchError(f"stockade {spec.argv}: {res.status} {res.message} {res.stderr!r}")


def timed_ms(fn: Callable[[], None]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6


def back_to_back(n: int, burst: Burst) -> None:
    start = time.perf_counter_ns()
    for _ in range(n):
        burst.samples.append(timed_ms(burst.run))
    burst.wall_s += (time.perf_counter_ns() - start) / 1e9
    burst.boxes += n


def parallel(n_each: int, burst: Burst) -> None:
    """`burst.threads` threads run n_each boxes each at once; the launcher gives each running
    box its own slot (uid, template, cgroup)."""
    fn = burst.run
    gate = threading.Barrier(burst.threads + 1)
    per_thread: list[list[float]] = [[] for _ in range(burst.threads)]
    errors: list[BaseException] = []

    def worker(out: list[float]) -> None:
        gate.wait()
        try:
            for _ in range(n_each):
                out.append(timed_ms(fn))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(out,)) for out in per_thread]
    for t in threads:
        t.start()
    gate.wait()
    start = time.perf_counter_ns()
    for t in threads:
        t.join()
    burst.wall_s += (time.perf_counter_ns() - start) / 1e9
    if errors:
        raise errors[0]
    for out in per_thread:
        burst.samples.extend(out)
    burst.boxes += n_each * burst.threads


def run_burst(n: int, burst: Burst) -> None:
    if burst.threads == 1:
        back_to_back(n, burst)
    else:
        parallel(n, burst)


def median(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) if xs else None


def p90(xs: Sequence[float]) -> float | None:
    """Nearest-rank 90th percentile."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    u = os.uname()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "kernel": f"{u.sysname} {u.release} {u.machine}",
        "cpu": model,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def bwrap_preflight() -> str:
    """Check that every flag works with this bwrap and the box is what BWRAP_ARGS claims."""
    if not os.access(BWRAP, os.X_OK):
        raise BenchError(f"{BWRAP} not found: install Debian's bubblewrap (make deps)")
    version = subprocess.run(
        [BWRAP, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    probe = "id -u; id -g; hostname; pwd; grep CapEff /proc/self/status"
    out = subprocess.run(
        [*BWRAP_ARGS, "/bin/sh", "-c", probe], capture_output=True, text=True, env=ENV
    )
    got = out.stdout.split()
    want = ["60999", "60999", "box", "/box", "CapEff:", "0000000000000000"]
    if out.returncode != 0 or got != want:
        raise BenchError(f"bwrap preflight: rc {out.returncode}, {got} != {want}: {out.stderr}")
    return version


class Timeout(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Timeout("the benchmark ran past its hard time limit")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=300, help="samples per contender (default 300)")
    p.add_argument("--warmup", type=int, default=20, help="unmeasured rounds first (default 20)")
    p.add_argument(
        "--burst",
        type=int,
        default=20,
        help="boxes per back-to-back burst, per thread when parallel",
    )
    p.add_argument("--no-python", action="store_true", help="skip the python3 -c pass contenders")
    p.add_argument("--seed", type=int, default=1, help="seed of the per-round shuffle")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=90.0,
        help="stop measuring after this long and report what was taken (default 90)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    for name in ("runs", "burst"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print(
            "bench/box.py: run as root (Stockade needs namespaces, cgroups, mounts)",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(args.max_seconds) + 25)  # hard stop: the whole run stays under 2 min
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else print
    started = time.monotonic()
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    bwrap_version = bwrap_preflight()
    lau = Launcher()
    try:
        return measure(args, lau, bwrap_version, date, started, log)
    finally:
        lau.close()
        signal.alarm(0)


def measure(
    args: argparse.Namespace,
    lau: Launcher,
    bwrap_version: str,
    date: str,
    started: float,
    log: Callable[[str], None],
) -> int:
    if not lau.container.warm.wait_full(timeout_s=30):
        raise BenchError("the warm pool did not fill in 30 s")
    box_true = BoxSpec(argv=TRUE)
    box_py = BoxSpec(argv=PYTHON)
    singles = [
        Contender("bare", "bare: posix_spawn+waitpid /bin/true", lambda: spawn_wait(TRUE)),
        Contender("bare_fork", "bare: fork+execve+waitpid /bin/true", lambda: fork_exec(TRUE)),
        Contender("stockade", "stockade: warm box, /bin/true", lambda: stockade_box(lau, box_true)),
        Contender("bwrap", "bwrap: posix_spawn, /bin/true", lambda: spawn_wait(BWRAP_ARGS + TRUE)),
    ]
    if not args.no_python:
        singles += [
            Contender("python_bare", "bare: python3 -c pass", lambda: spawn_wait(PYTHON)),
            Contender(
                "python_stockade", "stockade: python3 -c pass", lambda: stockade_box(lau, box_py)
            ),
            Contender(
                "python_bwrap", "bwrap: python3 -c pass", lambda: spawn_wait(BWRAP_ARGS + PYTHON)
            ),
        ]
    box_fn: Callable[[], None] = lambda: stockade_box(lau, box_true)  # noqa: E731
    bwrap_fn: Callable[[], None] = lambda: spawn_wait(BWRAP_ARGS + TRUE)  # noqa: E731
    # bwrap does all its work before waitpid returns; Stockade finishes a box and refills its
    # warm pool on threads after run() returns. Bursts show what that costs at full rate.
    bursts = (
        Burst("stockade_back_to_back", "stockade: back to back, 1 thread", 1, box_fn),
        Burst("stockade_parallel2", "stockade: 2 threads, 2 slots", 2, box_fn),
        Burst("bwrap_back_to_back", "bwrap: back to back, 1 thread", 1, bwrap_fn),
        Burst("bwrap_parallel2", "bwrap: 2 threads", 2, bwrap_fn),
    )

    rng = random.Random(args.seed)
    log(
        f"warming up: {args.warmup} rounds and one burst of each kind "
        "(the first box on each slot builds its template)"
    )
    for _ in range(args.warmup):
        for c in rng.sample(singles, len(singles)):
            c.run()
    for b in bursts:
        run_burst(args.burst, Burst("", "", b.threads, b.run))
    lau.container.warm.wait_full(timeout_s=5)

    n_bursts = max(1, args.runs // args.burst)
    burst_after = {round((k + 1) * args.runs / n_bursts) - 1 for k in range(n_bursts)}
    deadline = time.monotonic() + args.max_seconds
    log(
        f"measuring: {args.runs} rounds of {len(singles)} contenders, "
        f"{n_bursts} bursts of each kind"
    )
    prev = ""
    truncated = False
    for r in range(args.runs):
        if time.monotonic() > deadline:
            truncated = True
            break
        for c in rng.sample(singles, len(singles)):
            ms = timed_ms(c.run)
            c.samples.append(ms)
            (c.after_stockade if "stockade" in prev else c.after_other).append(ms)
            prev = c.key
        if r in burst_after:
            for b in rng.sample(bursts, len(bursts)):
                run_burst(args.burst, b)
            prev = "stockade_burst"
    elapsed = time.monotonic() - started

    report = build_report(args, singles, bursts, bwrap_version, date, elapsed, truncated)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report, singles, bursts)
    return 0


def build_report(
    args: argparse.Namespace,
    singles: list[Contender],
    bursts: tuple[Burst, ...],
    bwrap_version: str,
    date: str,
    elapsed: float,
    truncated: bool,
) -> dict[str, Any]:
    rep: dict[str, Any] = {"date": date, "machine": machine()}
    by = {c.key: c for c in singles}
    for c in singles:
        rep[f"{c.key}_ms"] = median(c.samples)
        rep[f"{c.key}_p90_ms"] = p90(c.samples)
        rep[f"{c.key}_min_ms"] = min(c.samples, default=None)
        rep[f"{c.key}_n"] = len(c.samples)
    for b in bursts:
        rep[f"{b.key}_boxes"] = b.boxes
        rep[f"{b.key}_boxes_per_s"] = b.boxes / b.wall_s if b.wall_s else None
        rep[f"{b.key}_wall_ms_per_box"] = b.wall_s * 1e3 / b.boxes if b.boxes else None
        rep[f"{b.key}_ms"] = median(b.samples)
        rep[f"{b.key}_p90_ms"] = p90(b.samples)
    rep["ratio_vs_bwrap"] = ratio(rep["stockade_ms"], rep["bwrap_ms"])
    rep["ratio_p90_vs_bwrap"] = ratio(rep["stockade_p90_ms"], rep["bwrap_p90_ms"])
    for kind in ("back_to_back", "parallel2"):
        rep[f"{kind}_ratio_vs_bwrap"] = ratio(
            rep[f"stockade_{kind}_wall_ms_per_box"], rep[f"bwrap_{kind}_wall_ms_per_box"]
        )
    rep["ratio_vs_bare"] = ratio(rep["stockade_ms"], rep["bare_ms"])
    rep["bwrap_ratio_vs_bare"] = ratio(rep["bwrap_ms"], rep["bare_ms"])
    both = rep["stockade_ms"] is not None and rep["bare_ms"] is not None
    rep["stockade_overhead_ms"] = rep["stockade_ms"] - rep["bare_ms"] if both else None
    if "python_stockade" in by:
        rep["python_ratio_vs_bare"] = ratio(rep["python_stockade_ms"], rep["python_bare_ms"])
        rep["python_ratio_vs_bwrap"] = ratio(rep["python_stockade_ms"], rep["python_bwrap_ms"])
    # Stockade finishes a box (init exit, cgroup rmdir) and refills its warm pool on threads
    # after run() returns; this shows what that costs whoever runs next.
    rep["bwrap_after_stockade_ms"] = median(by["bwrap"].after_stockade)
    rep["bwrap_after_other_ms"] = median(by["bwrap"].after_other)
    rep["bare_after_stockade_ms"] = median(by["bare"].after_stockade)
    rep["bare_after_other_ms"] = median(by["bare"].after_other)
    rep["target_ratio"] = TARGET_RATIO
    rep["target_met"] = rep["ratio_vs_bwrap"] is not None and rep["ratio_vs_bwrap"] <= TARGET_RATIO
    rep["runs"] = args.runs
    rep["warmup"] = args.warmup
    rep["burst"] = args.burst
    rep["seed"] = args.seed
    rep["truncated"] = truncated
    rep["elapsed_s"] = round(elapsed, 2)
    rep["bwrap_version"] = bwrap_version
    rep["bwrap_command"] = " ".join(BWRAP_ARGS + TRUE)
    rep["method"] = (
        "one process; each round runs every single-box contender once in a shuffled order; "
        "bursts of back-to-back and 2-thread boxes are interleaved between rounds; "
        "bare and bwrap children are started with os.posix_spawn + os.waitpid"
    )
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in rep.items()}


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def print_table(rep: dict[str, Any], singles: list[Contender], bursts: tuple[Burst, ...]) -> None:
    m = rep["machine"]
    print(f"\nStockade box benchmark, {rep['date']}")
    print(f"machine: nproc {m['nproc']}, {m['kernel']}, {m['cpu']}, Python {m['python']}")
    print(f"load average at the end: {m['loadavg']}; took {rep['elapsed_s']} s")
    print(
        f"{rep['runs']} rounds (warmup {rep['warmup']}), every contender once per round in "
        f"shuffled order (seed {rep['seed']}); bursts of {rep['burst']} boxes interleaved"
        + (" -- TRUNCATED by --max-seconds" if rep["truncated"] else "")
    )
    print(f"{rep['bwrap_version']}: {rep['bwrap_command']}\n")
    bare = rep["bare_ms"]
    print(f"{'single box':40} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'x bare':>7} {'n':>5}")
    for c in singles:
        med = rep[f"{c.key}_ms"]
        print(
            f"{c.label:40} {_f(med):>10} {_f(rep[f'{c.key}_p90_ms']):>8} "
            f"{_f(rep[f'{c.key}_min_ms']):>8} {_f(ratio(med, bare)):>7} {len(c.samples):>5}"
        )
    print(f"\n{'throughput':40} {'boxes/s':>10} {'ms/box':>8} {'median':>8} {'p90':>7} {'n':>5}")
    for b in bursts:
        print(
            f"{b.label:40} {_f(rep[f'{b.key}_boxes_per_s'], 1):>10} "
            f"{_f(rep[f'{b.key}_wall_ms_per_box']):>8} {_f(rep[f'{b.key}_ms']):>8} "
            f"{_f(rep[f'{b.key}_p90_ms']):>7} {b.boxes:>5}"
        )
    print("  (ms/box: burst wall time / boxes; median, p90: latency of one run() call)")
    met = "met" if rep["target_met"] else "NOT met"
    print("\nratios of medians")
    print(
        f"  stockade / bwrap      {_f(rep['ratio_vs_bwrap'], 3)}  "
        f"(target <= {TARGET_RATIO}: {met}; p90 ratio {_f(rep['ratio_p90_vs_bwrap'], 3)})"
    )
    print(
        f"  stockade / bare       {_f(rep['ratio_vs_bare'], 3)}  "
        f"(+{_f(rep['stockade_overhead_ms'])} ms)"
    )
    print(f"  bwrap / bare          {_f(rep['bwrap_ratio_vs_bare'], 3)}")
    print(
        f"  stockade / bwrap, ms/box back to back {_f(rep['back_to_back_ratio_vs_bwrap'], 3)}, "
        f"on 2 threads {_f(rep['parallel2_ratio_vs_bwrap'], 3)}"
    )
    if "python_ratio_vs_bare" in rep:
        print(f"  python3: stockade / bare  {_f(rep['python_ratio_vs_bare'], 3)}")
        print(f"  python3: stockade / bwrap {_f(rep['python_ratio_vs_bwrap'], 3)}")
    print(
        f"  bwrap right after a stockade box {_f(rep['bwrap_after_stockade_ms'])} ms, "
        f"otherwise {_f(rep['bwrap_after_other_ms'])} ms (Stockade's teardown runs on a thread)"
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, Timeout) as e:
        print(f"bench/box.py: {e}", file=sys.stderr)
        sys.exit(1)
