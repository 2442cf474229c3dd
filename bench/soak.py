"""Soak: mixed load through the real stack for --minutes (30), sampling memory and open file
descriptors of the API and the worker every minute. Neither may grow without bound.

Each minute is one round of bench/load.py's mix (Python, C, C++, JavaScript, Bash; AC, WA,
TLE, RE, CE; wait=true and polling) driven for that minute by --clients clients. After every
round it records the resident memory and the open fds of every process in the API's session
and in the worker's session, and the submissions that ended with an unexpected status. The
verdict compares the second half of the run with the first: growth past --max-growth (20%)
in either figure fails. As root (boxes): .venv/bin/python bench/soak.py [--minutes 30] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

# Run as a script, bench/ comes first on sys.path and bench/service.py would shadow the
# `service` package: import through the repository root, as bench/load.py does.
_ROOT = str(Path(__file__).resolve().parents[1])
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [_ROOT] + [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]

from bench.load import KINDS, drive  # noqa: E402
from bench.service import Stack  # noqa: E402

ROUND_S = 60.0


def session_usage(session: int) -> tuple[int, int]:
    """(resident bytes, open fds) of every process in the session."""
    rss, fds = 0, 0
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[3]) != session:
                    continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
            fds += len(os.listdir(f"/proc/{entry}/fd"))
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
    return rss, fds


def verdict(samples: list[dict[str, Any]], max_growth: float) -> dict[str, Any]:
    """Compare the medians of the second half with those of the first half."""
    half = max(1, len(samples) // 2)
    out: dict[str, Any] = {}
    for key in ("api_rss_mib", "api_fds", "worker_rss_mib", "worker_fds"):
        first = statistics.median(s[key] for s in samples[:half])
        second = statistics.median(s[key] for s in samples[half:] or samples[:half])
        out[key] = round(second / first - 1, 3) if first else 0.0
    out["bounded"] = all(v <= max_growth for v in out.values() if isinstance(v, float))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=int, default=30)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--max-growth", type=float, default=0.2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/soak.py: needs root (boxes)", file=sys.stderr)
        return 1
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="stockade-soak-") as tmp:
        stack = Stack(Path(tmp))
        try:
            worker, api = stack.procs[1].pid, stack.procs[2].pid  # each its own session
            for minute in range(1, args.minutes + 1):
                # More jobs than a minute can take: the round ends on its deadline.
                outcomes, _ = asyncio.run(drive(stack.url, 100_000, args.clients, ROUND_S))
                (w_rss, w_fds), (a_rss, a_fds) = session_usage(worker), session_usage(api)
                sample = {
                    "minute": minute,
                    "done": sum(o.error is None for o in outcomes),
                    # Submissions still running when the round's minute ended are not errors.
                    "cut": sum((o.error or "").startswith("gave up") for o in outcomes),
                    "errors": sum(
                        o.error is not None and not o.error.startswith("gave up") for o in outcomes
                    ),
                    "api_rss_mib": round(a_rss / 2**20, 1),
                    "api_fds": a_fds,
                    "worker_rss_mib": round(w_rss / 2**20, 1),
                    "worker_fds": w_fds,
                }
                samples.append(sample)
                if not args.json:
                    print(json.dumps(sample), flush=True)
        finally:
            stack.close()
    result = {"minutes": args.minutes, "kinds": len(KINDS), "samples": samples}
    result["growth"] = verdict(samples, args.max_growth)
    print(json.dumps(result if args.json else result["growth"]))
    return 0 if result["growth"]["bounded"] else 1


if __name__ == "__main__":
    sys.exit(main())
