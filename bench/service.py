"""The service against the bare box: Python hello submissions per second through HTTP with 2
worker slots vs sandbox.run on 2 threads, and the p50/p99 latency of wait=true.

Starts its own private redis-server (unix socket in a temporary directory), a Celery worker
(concurrency 2) and the API on a free 127.0.0.1 port; stops them all at the end. As root.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

# Run as a script, this file's directory comes first on sys.path, and this very file would
# shadow the `service` package.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]

from service.commands import gunicorn_argv, redis_command  # noqa: E402

PYTHON = 71
HELLO = 'print("hello")\n'
SLOTS = 2
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """redis, worker and API, each in its own session; stopped by pid in reverse order."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        sock = tmp / "redis.sock"
        self.env = {
            **os.environ,
            "STOCKADE_REDIS_URL": f"unix://{sock}",
            "STOCKADE_ACCESS_LOG": "/dev/null",
        }
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            self._spawn("redis", redis_command(str(sock), str(tmp)))
            self._wait("redis", sock.exists)
            worker = [sys.executable, "-m", "service.cli", "worker", "--workers", str(SLOTS)]
            log = self._spawn("worker", worker)
            self._wait("worker", lambda: b" ready." in log.read_bytes())
            self._spawn("api", gunicorn_argv("127.0.0.1", self.port))
            self._wait("api", self._listening)
        except BaseException:
            self.close()  # what started must stop, even when the rest did not start
            raise

    def _spawn(self, name: str, argv: list[str]) -> Path:
        log = self.tmp / f"{name}.log"
        with open(log, "ab") as out:
            self.procs.append(
                subprocess.Popen(
                    argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        return log

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def _wait(self, what: str, ready: Any) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            if self.procs[-1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start; see {self.tmp}/{what}.log")
            time.sleep(0.05)

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        self.procs.clear()


def http_throughput(url: str, n: int, clients: int) -> float:
    """Submissions per second: `clients` threads each POST wait=true until n are done. The
    client is http.client on a kept-alive connection: the load generator shares the 2 vCPUs
    with the service, so it must cost as little as a real, remote client would here."""
    left = [n]
    lock = threading.Lock()
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"source_code": HELLO, "language_id": 71}).encode()
    headers = {"Content-Type": "application/json"}

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                conn.request("POST", "/submissions?wait=true", body, headers)
                r = conn.getresponse()
                data = r.read()
                if r.status != 201 or json.loads(data)["status"]["id"] != 3:
                    raise RuntimeError(f"bad result: {r.status} {data[:200]!r}")
        finally:
            conn.close()

    start = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    return n / (time.monotonic() - start)


def box_throughput(launcher: Any, n: int) -> float:
    """The same program as the judge runs it, straight through one Launcher on SLOTS threads."""
    from worker.judge import Judge

    spec = Judge(launcher, rootfs="host").build(PYTHON, HELLO, {}).box_spec((), (), b"")
    left = [n]
    lock = threading.Lock()
    launcher.run(spec)  # warm

    def loop() -> None:
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            if launcher.run(spec).stdout != b"hello\n":
                raise RuntimeError("the box did not print hello")

    start = time.monotonic()
    with ThreadPoolExecutor(SLOTS) as pool:
        for f in [pool.submit(loop) for _ in range(SLOTS)]:
            f.result()
    took = time.monotonic() - start
    launcher.settle()
    return n / took


def wait_latency(url: str, n: int) -> tuple[float, float]:
    """p50 and p99 (ms) of one client's POST ?wait=true for a Python hello, one at a time."""
    times: list[float] = []
    with httpx.Client(base_url=url, timeout=60) as c:
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.post("/submissions?wait=true", json={"source_code": HELLO, "language_id": 71})
            times.append((time.perf_counter() - t0) * 1000)
            if r.json()["status"]["id"] != 3:
                raise RuntimeError(f"bad result: {r.text[:200]}")
    q = statistics.quantiles(times, n=100, method="inclusive")
    return statistics.median(times), q[98]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=200, help="submissions per throughput run (200)")
    p.add_argument("--latency-n", type=int, default=200, help="wait=true requests (200)")
    p.add_argument("--clients", type=int, default=8, help="HTTP client threads (8)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of each (3)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/service.py: needs root (boxes)", file=sys.stderr)
        return 1
    from sandbox.launcher import Launcher

    boxes: list[float] = []
    https: list[float] = []
    with tempfile.TemporaryDirectory(prefix="stockade-bench-") as tmp, Launcher() as launcher:
        stack = Stack(Path(tmp))
        try:
            http_throughput(stack.url, 20, args.clients)  # warm
            # Side by side: rounds alternate, so the machine's noise hits both alike.
            for _ in range(args.rounds):
                boxes.append(box_throughput(launcher, args.n))
                https.append(http_throughput(stack.url, args.n, args.clients))
            p50, p99 = wait_latency(stack.url, args.latency_n)
        finally:
            stack.close()
    box, http = statistics.median(boxes), statistics.median(https)
    out = {
        "slots": SLOTS,
        "http_per_s": round(http, 1),
        "box_per_s": round(box, 1),
        "ratio": round(http / box, 3),
        "rounds": {
            "http_per_s": [round(x, 1) for x in https],
            "box_per_s": [round(x, 1) for x in boxes],
        },
        "ratio_target": 0.8,
        "wait_p50_ms": round(p50, 1),
        "wait_p99_ms": round(p99, 1),
        "wait_p50_target_ms": 40,
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"Python hello, {SLOTS} slots        HTTP (Celery)   sandbox.run   ratio (target >= 0.8)")
    print(f"  submissions per second   {http:10.1f}   {box:11.1f}   {http / box:5.2f}")
    print(f"  (medians of {args.rounds} alternating rounds:", end=" ")
    print(f"HTTP {[round(x, 1) for x in https]}, box {[round(x, 1) for x in boxes]})")
    print(
        f"wait=true latency           p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   (target p50 <= 40 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
