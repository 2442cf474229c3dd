"""Load: 2,000 submissions from 50 concurrent clients through the Judge0 API of the real stack.

Mixes languages (Python, C, C++, JavaScript, Bash), verdicts (AC, WA, TLE, RE, CE) and the two
ways of waiting (POST ?wait=true, and POST then polling GET). Reports throughput, p50/p95/p99
latency (submit to final result), errors by kind and the worker's RSS (every process of its
session) before and after. Gives up after --max-minutes with a report of what finished.

Starts its own private redis-server, Celery worker and API (bench/service.py's Stack); stops
them all at the end. As root (boxes).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# Run as a script, this file's directory comes first on sys.path and bench/service.py would
# shadow the `service` package: import the Stack as bench.service from the repository root.
_ROOT = str(Path(__file__).resolve().parents[1])
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [_ROOT] + [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]

from bench.service import SLOTS, Stack  # noqa: E402

FINAL_FROM = 3  # Judge0 status ids 1 (In Queue) and 2 (Processing) are not final
POLL_S = 0.25
REQUEST_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Kind:
    """One kind of submission: a language, a program and the Judge0 status it must end in."""

    name: str
    language_id: int
    source: str
    status: int  # 3 AC, 4 WA, 5 TLE, 6 CE, 11 RE (NZEC)
    stdin: str = "7\n"
    expected: str = "7\n"
    cpu_time_limit: float | None = None


C_AC = '#include <stdio.h>\nint main(void){int x;scanf("%d",&x);printf("%d\\n",x);return 0;}\n'
CPP_AC = "#include <iostream>\nint main(){int x;std::cin>>x;std::cout<<x<<'\\n';}\n"
TLE = 0.5  # seconds of CPU for the TLE kinds: short, so they cost the slots little

KINDS = [
    Kind("python-ac", 71, "print(input())\n", 3),
    Kind("python-wa", 71, "print(int(input()) + 1)\n", 4),
    Kind("python-re", 71, "raise SystemExit(3)\n", 11),
    Kind("python-tle", 71, "while True:\n    pass\n", 5, cpu_time_limit=TLE),
    Kind("c-ac", 50, C_AC, 3),
    Kind("c-wa", 50, '#include <stdio.h>\nint main(void){puts("8");return 0;}\n', 4),
    Kind("c-re", 50, "int main(void){return 3;}\n", 11),
    Kind("c-ce", 50, "int main(void){ return }\n", 6),
    Kind("c-tle", 50, "int main(void){volatile int x=0;for(;;)x++;}\n", 5, cpu_time_limit=TLE),
    Kind("cpp-ac", 54, CPP_AC, 3),
    Kind("cpp-ce", 54, "int main(){ std::cout << 1; }\n", 6),
    Kind(
        "js-ac", 63, "const fs=require('fs');process.stdout.write(fs.readFileSync(0,'utf8'));\n", 3
    ),
    Kind("js-re", 63, "process.exit(2);\n", 11),
    Kind("js-wa", 63, "console.log(8);\n", 4),
    Kind("bash-ac", 46, "read x; echo $x\n", 3),
    Kind("bash-wa", 46, "echo 8\n", 4),
    Kind("bash-re", 46, "exit 4\n", 11),
    Kind("bash-tle", 46, "while :; do :; done\n", 5, cpu_time_limit=TLE),
]


@dataclass
class Outcome:
    kind: str
    waited: bool
    latency_s: float
    error: str | None  # None: final with the expected status


def worker_rss_bytes(session: int) -> int:
    """Resident memory of every process in the worker's session (Celery's parent, its prefork
    children and the launcher's helpers); the boxes run in their own sessions."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) != session:  # field 6 of stat: the session id
                continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
    return total


def body(kind: Kind) -> dict[str, Any]:
    out: dict[str, Any] = {
        "source_code": kind.source,
        "language_id": kind.language_id,
        "stdin": kind.stdin,
        "expected_output": kind.expected,
    }
    if kind.cpu_time_limit is not None:
        out["cpu_time_limit"] = kind.cpu_time_limit
        out["wall_time_limit"] = kind.cpu_time_limit * 4
    return out


async def one(client: httpx.AsyncClient, kind: Kind, wait: bool, deadline: float) -> Outcome:
    t0 = time.monotonic()

    def done(error: str | None) -> Outcome:
        return Outcome(kind.name, wait, time.monotonic() - t0, error)

    try:
        r = await client.post("/submissions", params={"wait": str(wait).lower()}, json=body(kind))
        if r.status_code != 201:
            return done(f"POST {r.status_code}")
        data = r.json()
        token = data["token"]
        # wait=true answers the record as it stands after the server's wait timeout: poll on.
        while data.get("status", {}).get("id", 1) < FINAL_FROM:
            if time.monotonic() > deadline:
                return done("gave up (bench deadline)")
            await asyncio.sleep(POLL_S)
            r = await client.get(f"/submissions/{token}", params={"fields": "status,token"})
            if r.status_code != 200:
                return done(f"GET {r.status_code}")
            data = r.json()
        got = data["status"]["id"]
        return done(None if got == kind.status else f"status {got}, expected {kind.status}")
    except httpx.HTTPError as e:
        return done(f"http {type(e).__name__}")
    except (ValueError, KeyError) as e:
        return done(f"bad response {type(e).__name__}")


async def drive(url: str, n: int, clients: int, max_s: float) -> tuple[list[Outcome], float]:
    deadline = time.monotonic() + max_s
    jobs: asyncio.Queue[tuple[Kind, bool]] = asyncio.Queue()
    for i in range(n):
        jobs.put_nowait((KINDS[i % len(KINDS)], i % 2 == 0))
    outcomes: list[Outcome] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:

        async def loop() -> None:
            while time.monotonic() < deadline:
                try:
                    kind, wait = jobs.get_nowait()
                except asyncio.QueueEmpty:
                    return
                outcomes.append(await one(client, kind, wait, deadline))

        start = time.monotonic()
        tasks = [asyncio.create_task(loop()) for _ in range(clients)]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), max_s + REQUEST_TIMEOUT_S)
        except TimeoutError:
            pass  # the report says how many never finished
        took = time.monotonic() - start
    return outcomes, took


def report(outcomes: list[Outcome], n: int, took: float, rss: tuple[int, int]) -> dict[str, Any]:
    ok = [o for o in outcomes if o.error is None]
    finished = [o for o in outcomes if o.error is None or o.error.startswith("status")]
    lat = sorted(o.latency_s * 1000 for o in finished) or [0.0]
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
    errors = collections.Counter(o.error for o in outcomes if o.error is not None)
    by_kind = collections.Counter(o.kind for o in outcomes if o.error is not None)
    errors["never sent or unfinished"] = n - len(outcomes)
    return {
        "submissions": n,
        "clients": None,
        "slots": SLOTS,
        "completed": len(finished),
        "correct": len(ok),
        "seconds": round(took, 1),
        "throughput_per_s": round(len(finished) / took, 2) if took else 0.0,
        "latency_ms": {
            "p50": round(statistics.median(lat), 1),
            "p95": round(q[94], 1),
            "p99": round(q[98], 1),
            "max": round(lat[-1], 1),
        },
        "errors": {k: v for k, v in errors.items() if v},
        "errors_by_kind": dict(by_kind),
        "worker_rss_mib": {"before": round(rss[0] / 2**20, 1), "after": round(rss[1] / 2**20, 1)},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=2000, help="submissions (2000)")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    p.add_argument("--max-minutes", type=float, default=15.0, help="give up after (15)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/load.py: needs root (boxes)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="stockade-load-") as tmp:
        stack = Stack(Path(tmp))
        try:
            session = stack.procs[1].pid  # the worker, started in its own session
            warm = asyncio.run(drive(stack.url, len(KINDS), len(KINDS), 300))[0]
            rss_before = worker_rss_bytes(session)
            outcomes, took = asyncio.run(
                drive(stack.url, args.n, args.clients, args.max_minutes * 60)
            )
            time.sleep(1)  # let the last boxes' helpers settle
            rss_after = worker_rss_bytes(session)
        finally:
            stack.close()
    out = report(outcomes, args.n, took, (rss_before, rss_after))
    out["clients"] = args.clients
    out["warm_up_errors"] = sum(o.error is not None for o in warm)
    if args.json:
        print(json.dumps(out))
    else:
        lat = out["latency_ms"]
        print(
            f"{out['completed']}/{args.n} completed ({out['correct']} with the expected status) "
            f"in {out['seconds']} s from {args.clients} clients, {SLOTS} worker slots"
        )
        print(f"throughput {out['throughput_per_s']} submissions/s")
        print(f"latency p50 {lat['p50']} ms  p95 {lat['p95']} ms  p99 {lat['p99']} ms")
        print(f"errors {out['errors'] or 'none'}  by kind {out['errors_by_kind'] or 'none'}")
        rss = out["worker_rss_mib"]
        print(f"worker RSS {rss['before']} MiB before, {rss['after']} MiB after")
    return 0 if out["correct"] == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
