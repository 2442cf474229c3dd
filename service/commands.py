"""`stockade serve`, `stockade worker` and `stockade up` (Redis, workers and the API together)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sandbox.settings import setting
from service.config import AUTH_TOKENS
from worker.celery_app import make_app
from worker.jobs.settings import QUEUE_NAME, REDIS_URL

DEFAULT_PORT = 2358  # Judge0's
DEFAULT_HOST = "127.0.0.1"
REDIS_SOCKET = "/run/stockade/redis.sock"
REDIS_DIR = "/var/lib/stockade/redis"
STOP_GRACE_S = 30.0  # a worker finishes its running jobs in this long, then is killed
START_TIMEOUT_S = 20.0

API_PROCESSES = setting("STOCKADE_API_PROCESSES", 2, "gunicorn processes of the API", minimum=1)
API_THREADS = setting(
    "STOCKADE_API_THREADS",
    16,
    "threads per API process (a wait=true request holds one)",
    minimum=1,
)
ACCESS_LOG = setting("STOCKADE_ACCESS_LOG", "-", "the API's access log file; -: stdout")
LOG_LEVEL = setting(
    "STOCKADE_LOG_LEVEL",
    "INFO",
    "the workers' log level",
    choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
)


def add_service_parsers(subparsers: argparse._SubParsersAction[Any]) -> None:
    for name, text in (
        ("serve", "run the HTTP API under gunicorn"),
        ("worker", "run a Celery worker that judges submissions (as root: it starts boxes)"),
        ("up", "start a private Redis (unless STOCKADE_REDIS_URL is set), workers and the API"),
    ):
        p = subparsers.add_parser(name, help=text, description=text)
        if name != "worker":
            p.add_argument("--port", type=int, default=DEFAULT_PORT, help="API port (2358)")
            p.add_argument("--host", default=DEFAULT_HOST, help="API address (127.0.0.1)")
        if name != "serve":
            p.add_argument("--workers", type=int, default=2, help="concurrent jobs per worker (2)")


def auth_notice(host: str, port: int, env: Mapping[str, str] | None = None) -> str | None:
    """What `serve` and `up` say once at start-up when the API has no tokens (each gunicorn
    process builds its own app: saying it there would say it once per process)."""
    if AUTH_TOKENS.as_words(env):
        return None
    return (
        f"stockade: auth is off (STOCKADE_AUTH_TOKENS is empty): any program that reaches "
        f"{host}:{port} may submit code and read results by token; only Host names "
        "localhost, 127.0.0.1 and ::1 (and STOCKADE_ALLOWED_HOSTS) and JSON bodies are "
        "served. Set STOCKADE_AUTH_TOKENS before serving beyond this machine."
    )


def say_auth_notice(host: str, port: int) -> None:
    notice = auth_notice(host, port)
    if notice is not None:
        print(notice, file=sys.stderr, flush=True)


def run_service(args: argparse.Namespace) -> int:
    if args.command == "serve":
        say_auth_notice(args.host, args.port)
        os.execv(sys.executable, gunicorn_argv(args.host, args.port))
    if args.command == "worker":
        return run_worker(args.workers)
    return run_up(args.host, args.port, args.workers)


def gunicorn_argv(host: str, port: int) -> list[str]:
    """Threads, not processes, carry the load: a wait=true request sleeps on Redis pub/sub."""
    processes = str(API_PROCESSES.as_int())
    threads = str(API_THREADS.as_int())
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", f"{host}:{port}",
        "--workers", processes,
        "--worker-class", "gthread",
        "--threads", threads,
        "--graceful-timeout", "10",
        "--no-control-socket",
        "--access-logfile", ACCESS_LOG.as_str(),
        "service.app:create_app()",
    ]  # fmt: skip


def worker_argv(concurrency: int) -> list[str]:
    """Celery's own command line: the Stockade queue, prefork children, no gossip."""
    return [
        "worker",
        "--queues", QUEUE_NAME.as_str(),
        "--concurrency", str(max(1, concurrency)),
        "--pool", "prefork",
        "--hostname", f"stockade-{os.getpid()}@{socket.gethostname()}",
        "--loglevel", LOG_LEVEL.as_str(),
        "--without-gossip",
        "--without-mingle",
    ]  # fmt: skip


def run_worker(concurrency: int) -> int:
    if os.geteuid() != 0:
        print(
            "stockade worker: must run as root (it creates namespaces and cgroups)", file=sys.stderr
        )
        return 1
    make_app().worker_main(worker_argv(concurrency))
    return 0


# --- up ---------------------------------------------------------------------------------------


def redis_command(socket_path: str, data_dir: str) -> list[str]:
    """A private Redis: unix socket only, AOF on, nothing on TCP."""
    return [
        shutil.which("redis-server") or "redis-server",
        "--port", "0",
        "--unixsocket", socket_path,
        "--unixsocketperm", "700",
        "--dir", data_dir,
        "--appendonly", "yes",
        "--save", "",
        "--daemonize", "no",
        "--loglevel", "warning",
    ]  # fmt: skip


class Stack:
    """The processes `up` started, by pid, each in a session of its own so that a Ctrl-C
    reaches `up` alone and they stop in order: API, workers, then Redis."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        proc = subprocess.Popen(list(argv), env=env, start_new_session=True)
        self.procs.append((name, proc))
        print(f"stockade up: {name} started (pid {proc.pid})", file=sys.stderr)

    def exited(self) -> str | None:
        for name, proc in self.procs:
            code = proc.poll()
            if code is not None:
                return f"{name} (pid {proc.pid}) exited with {code}"
        return None

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    print(f"stockade up: {name} did not stop; killing it", file=sys.stderr)
                    proc.kill()
                    proc.wait(5)
            print(f"stockade up: {name} stopped", file=sys.stderr)
        self.procs.clear()


def wait_for_redis(url: str, stack: Stack, timeout_s: float = START_TIMEOUT_S) -> None:
    import redis

    deadline = time.monotonic() + timeout_s
    client = redis.Redis.from_url(url)
    try:
        while True:
            try:
                client.ping()
                return
            except redis.RedisError:
                if stack.exited() or time.monotonic() > deadline:
                    raise RuntimeError(f"Redis at {url} did not come up") from None
                time.sleep(0.05)
    finally:
        client.close()


def wait_for_port(host: str, port: int, stack: Stack, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if stack.exited() or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not listen on {host}:{port}") from None
            time.sleep(0.05)


def run_up(host: str, port: int, workers: int) -> int:
    if os.geteuid() != 0:
        print("stockade up: must run as root (the workers start boxes)", file=sys.stderr)
        return 1
    env = dict(os.environ)
    stack = Stack()
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if not REDIS_URL.is_set(env):
            os.makedirs(os.path.dirname(REDIS_SOCKET), mode=0o700, exist_ok=True)
            os.makedirs(REDIS_DIR, mode=0o700, exist_ok=True)
            stack.start("redis", redis_command(REDIS_SOCKET, REDIS_DIR), env)
            env[REDIS_URL.name] = f"unix://{REDIS_SOCKET}"
            wait_for_redis(env[REDIS_URL.name], stack)
        me = [sys.executable, "-m", "service.cli"]
        stack.start("worker", [*me, "worker", "--workers", str(workers)], env)
        say_auth_notice(host, port)
        stack.start("api", gunicorn_argv(host, port), env)
        wait_for_port(host, port, stack)
        print(f"stockade up: serving on http://{host}:{port} (Ctrl-C stops)", file=sys.stderr)
        while not stopping:
            why = stack.exited()
            if why:
                print(f"stockade up: {why}; stopping the rest", file=sys.stderr)
                return 1
            time.sleep(0.25)
        return 0
    except RuntimeError as e:
        print(f"stockade up: {e}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
