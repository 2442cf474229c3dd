"""Every tier side by side in one run: /bin/true and a Python hello on the container, gvisor
and microvm tiers, bare `runsc do` on the same commands, and the microVM's cold boot against
its warm pool. Medians; the container, gVisor and runsc runs are interleaved in shuffled
order so that machine noise falls on all of them alike. As root."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path and would shadow packages.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]

from sandbox.launcher import Launcher  # noqa: E402
from sandbox.result import Status  # noqa: E402
from sandbox.spec import BoxSpec  # noqa: E402

TRUE = ("/bin/true",)
HELLO = ("/usr/bin/python3", "-c", "print('hello')")


def _box(launcher: Launcher, spec: BoxSpec) -> Callable[[], None]:
    def run() -> None:
        r = launcher.run(spec)
        if r.status is not Status.OK:
            raise RuntimeError(f"{spec.tier} {spec.argv}: {r.status} {r.message}")

    return run


def _runsc_do(argv: tuple[str, ...]) -> Callable[[], None]:
    """gVisor without Stockade: `runsc do` on the host's root, no network, same platform."""
    cmd = ["runsc", "--network=none", "--platform=ptrace", "do", *argv]

    def run() -> None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return run


def interleaved(contenders: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each call of each contender, one call of each per round in shuffled order."""
    for run in contenders.values():
        run()  # warm: first use starts backends, caches images
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            t0 = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def paired_ratio(a: list[float], b: list[float]) -> float:
    """The median of a/b over rounds: each round's two calls met the same machine, so this
    is steadier than a ratio of medians when the host's speed drifts during the run."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=20, help="interleaved rounds (20)")
    p.add_argument("--vm-runs", type=int, default=3, help="cold and warm microVM boxes (3)")
    p.add_argument("--image", default="python3", help="image for the Python hello (python3)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    figures: dict[str, float] = {}
    with Launcher() as launcher:
        contenders: dict[str, Callable[[], None]] = {}
        for tier in ("container", "gvisor"):
            contenders[f"{tier} true"] = _box(launcher, BoxSpec(argv=TRUE, tier=tier))
            contenders[f"{tier} python hello"] = _box(
                launcher, BoxSpec(argv=HELLO, rootfs=args.image, tier=tier)
            )
        if shutil.which("runsc"):
            contenders["runsc do true"] = _runsc_do(TRUE)
            contenders["runsc do python hello"] = _runsc_do(HELLO)
        times = interleaved(contenders, args.rounds)
        figures.update({name: statistics.median(ts) for name, ts in times.items()})
        for job in ("true", "python hello"):
            if f"runsc do {job}" in times:
                paired = paired_ratio(times[f"gvisor {job}"], times[f"runsc do {job}"])
                figures[f"gvisor / runsc do paired {job}"] = paired
        launcher.settle()
    from sandbox.backends.microvm.bench import measure
    from sandbox.config import HostConfig
    from sandbox.images.store import LayerStore

    config = HostConfig.from_env()
    vm = measure(config, LayerStore(config.state_dir), args.image, args.vm_runs, lambda s: None)
    figures.update({f"microvm {k}": v for k, v in vm.items()})
    if args.json:
        print(json.dumps(figures, indent=2, sort_keys=True))
        return 0
    print(f"{'median ms':<28}{'/bin/true':>12}{'python hello':>14}")
    rows = [
        ("container", "container true", "container python hello"),
        ("gvisor", "gvisor true", "gvisor python hello"),
        ("runsc do (bare gVisor)", "runsc do true", "runsc do python hello"),
        ("microvm, cold boot", "microvm cold true", "microvm cold python hello"),
        ("microvm, warm pool", "microvm warm true", "microvm warm python hello"),
    ]
    for label, a, b in rows:
        if a in figures:
            print(f"{label:<28}{figures[a] * 1000:>12.1f}{figures[b] * 1000:>14.1f}")
    for job in ("true", "python hello"):
        g, r = figures[f"gvisor {job}"], figures.get(f"runsc do {job}")
        if r:
            by_round = figures[f"gvisor / runsc do paired {job}"]
            print(f"gvisor / runsc do, {job}: {g / r:.2f} of medians, {by_round:.2f} by round")
        w, c = figures[f"microvm warm {job}"], figures[f"microvm cold {job}"]
        print(f"microvm warm / cold, {job}: {w / c:.2f} (target <= 0.2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
