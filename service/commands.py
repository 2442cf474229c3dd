"""`stockade serve`, `stockade worker` and `stockade up` (Redis, workers and the API together)."""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celery.bin.celery import celery as celery_command
from celery.worker import state as celery_state

from sandbox.cgroups import delegated_scope_argv
from sandbox.config import RUN_DIR, STATE_DIR
from sandbox.settings import setting
from service.config import AUTH_TOKENS
from worker.celery_app import make_app
from worker.jobs.settings import QUEUE_NAME, REDIS_URL, redacted

DEFAULT_PORT = 2358  # Judge0's
DEFAULT_HOST = "127.0.0.1"
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
UP_USER = setting(
    "STOCKADE_UP_USER",
    "nobody",
    "the user `stockade up` runs the API and its private Redis as (never root; only the "
    "workers need root)",
)
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
        if name == "worker":
            # How many times in a row this worker has re-run itself after Celery stopped on
            # an error (run_worker): carried across exec, never typed by a person.
            p.add_argument("--restarts", type=int, default=0, help=argparse.SUPPRESS)


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
        return run_worker(args.workers, args.restarts)
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


RESTART_MAX_DELAY_S = 30.0
RESTART_RESET_AFTER_S = 60.0  # a run this long was healthy: the next failure starts over


def restart_plan(restarts: int, ran_s: float) -> tuple[int, float]:
    """After Celery stopped on an error: the count to carry and the delay before re-running,
    doubling from 1 s to 30 s while failures come back to back."""
    if ran_s >= RESTART_RESET_AFTER_S:
        restarts = 0
    return restarts + 1, min(RESTART_MAX_DELAY_S, float(2**restarts))


def run_worker(concurrency: int, restarts: int = 0) -> int:
    if os.geteuid() != 0:
        print(
            "stockade worker: must run as root (it creates namespaces and cgroups)", file=sys.stderr
        )
        return 1
    # cgroup2 under systemd, started from a unit that delegates nothing (a root shell's
    # session scope): the boxes need a subtree of their own, so ask systemd for one.
    scoped = delegated_scope_argv([sys.executable, *sys.orig_argv[1:]])
    if scoped is not None:
        print("stockade worker: re-running in a transient scope with Delegate=yes", file=sys.stderr)
        os.execvp(scoped[0], scoped)
    started = time.monotonic()
    code = celery_worker(concurrency)
    if code in (0, None) or stop_was_asked():
        return 0 if code is None else int(code)
    # Celery gives up on errors it cannot retry ("Unrecoverable error": a Redis whose disk
    # is full answers BRPOP with MISCONF) and stops. The jobs it held are redelivered; this
    # process runs again, as systemd's Restart=on-failure would, so a worker outside systemd
    # (stockade up, a container without a restart policy) comes back by itself.
    count, delay = restart_plan(restarts, time.monotonic() - started)
    print(
        f"stockade worker: Celery stopped with exit status {code}; running again in "
        f"{delay:g} s (restart {count} in a row)",
        file=sys.stderr,
        flush=True,
    )
    time.sleep(delay)
    argv = [a for a in sys.orig_argv[1:] if not a.startswith("--restarts")]
    os.execv(sys.executable, [sys.executable, *argv, f"--restarts={count}"])


def stop_was_asked() -> bool:
    """Whether a signal (TERM, INT, QUIT) asked Celery to stop: Ctrl-C ends with status 1
    too, and must not bring the worker back."""
    return celery_state.should_stop is not None or celery_state.should_terminate is not None


def celery_worker(concurrency: int) -> Any:
    """Celery's worker command on Stockade's app, and its exit status (app.worker_main runs
    the same command but drops the status, so a worker that gave up looked like one that was
    asked to stop)."""
    celery_command.params[0].default = make_app()  # what app.start() does to name the app
    try:
        return celery_command.main(args=worker_argv(concurrency), standalone_mode=False)
    finally:
        celery_command.params[0].default = None


# --- up ---------------------------------------------------------------------------------------


def redis_command(socket_path: str, data_dir: str, config_from_stdin: bool = False) -> list[str]:
    """A private Redis: unix socket only, AOF on, nothing on TCP. config_from_stdin: the rest
    of its configuration (the password) comes on stdin, never on a command line that any
    user's `ps` shows (redis-server reads stdin for a last argument of "-")."""
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
        *(["-"] if config_from_stdin else []),
    ]  # fmt: skip


@dataclass(frozen=True)
class User:
    """An unprivileged account the API and the private Redis run as."""

    name: str
    uid: int
    gid: int
    home: str


def unprivileged_user(name: str) -> User:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(f"{UP_USER.name}: no user named {name!r} on this host") from None
    if pw.pw_uid == 0 or pw.pw_gid == 0:
        raise RuntimeError(f"{UP_USER.name}: {name!r} is root; name an unprivileged user")
    return User(name, pw.pw_uid, pw.pw_gid, pw.pw_dir)


def private_redis_paths(run_dir: str, state_dir: str) -> tuple[str, str]:
    """The private Redis's socket directory and data directory: beside the run directory
    (which is root's alone) and under the state directory."""
    return f"{run_dir.rstrip('/')}-redis", os.path.join(state_dir, "redis")


def cannot_run_api(user: User) -> str:
    """Why `user` cannot start the API from this checkout ("" when it can): the interpreter
    and the code must be reachable by it, which a root-only parent directory prevents."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import service.app"],
            user=user.uid,
            group=user.gid,
            extra_groups=[],
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "HOME": user.home},
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot run {sys.executable} ({e})"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return f"cannot import the API from {sys.executable} ({last})"
    return ""


def give_dir(path: str, user: User) -> None:
    """`path` (made if missing, never through a symlink) and all below it, to `user`, 0700:
    a Redis that ran as root before left its AOF root's."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchown(fd, user.uid, user.gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(top, name), user.uid, user.gid, follow_symlinks=False)


class Stack:
    """The processes `up` started, by pid, each in a session of its own so that a Ctrl-C
    reaches `up` alone and they stop in order: API, workers, then Redis."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        user: User | None = None,
        stdin: bytes | None = None,
    ) -> None:
        """`user`: the child drops to it (setgroups, setresgid, setresuid before execve);
        `stdin`: bytes written to its stdin, which is then closed."""
        drop: dict[str, Any] = {}
        if user is not None:
            drop = {"user": user.uid, "group": user.gid, "extra_groups": [], "cwd": "/"}
            env = {**env, "HOME": user.home, "USER": user.name, "LOGNAME": user.name}
        proc = subprocess.Popen(
            list(argv),
            env=env,
            start_new_session=True,
            stdin=subprocess.PIPE if stdin is not None else None,
            **drop,
        )
        if proc.stdin is not None:
            with proc.stdin:
                proc.stdin.write(stdin or b"")
        self.procs.append((name, proc))
        who = f" as {user.name}" if user else ""
        print(f"stockade up: {name} started (pid {proc.pid}){who}", file=sys.stderr)

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
                    raise RuntimeError(f"Redis at {redacted(url)} did not come up") from None
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
        # Only the workers need root (they start boxes): the API, which parses every request,
        # and Redis, which holds every submission, run as an unprivileged user.
        user = unprivileged_user(UP_USER.as_str(env))
        if not REDIS_URL.is_set(env):
            env[REDIS_URL.name] = start_private_redis(stack, user, env)
            wait_for_redis(env[REDIS_URL.name], stack)
        me = [sys.executable, "-m", "service.cli"]
        stack.start("worker", [*me, "worker", "--workers", str(workers)], env)
        say_auth_notice(host, port)
        unreachable = cannot_run_api(user)
        if unreachable:
            print(
                f"stockade up: WARNING: the API runs as root: {user.name} {unreachable}. Make the "
                "checkout and its .venv readable by that user (a clone under a 0700 home "
                f"or mktemp directory is not), or name another in {UP_USER.name}.",
                file=sys.stderr,
            )
        stack.start("api", gunicorn_argv(host, port), env, user=None if unreachable else user)
        wait_for_port(host, port, stack)
        print(f"stockade up: serving on http://{host}:{port} (Ctrl-C stops)", file=sys.stderr)
        while not stopping:
            why = stack.exited()
            if why:
                print(f"stockade up: {why}; stopping the rest", file=sys.stderr)
                return 1
            time.sleep(0.25)
        return 0
    except (RuntimeError, OSError, ValueError) as e:
        print(f"stockade up: {e}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        for s, handler in old.items():
            signal.signal(s, handler)


def start_private_redis(stack: Stack, user: User, env: dict[str, str]) -> str:
    """Redis as `user` on a unix socket in a directory of the user's own (so the API, the
    same user, and the workers, root, reach it, and no one else), with a password made for
    this run; returns the URL that carries it."""
    socket_dir, data_dir = private_redis_paths(RUN_DIR.as_str(env), STATE_DIR.as_str(env))
    give_dir(socket_dir, user)
    give_dir(data_dir, user)
    sock = os.path.join(socket_dir, "redis.sock")
    password = secrets.token_hex(32)
    config = f"requirepass {password}\n".encode()
    stack.start("redis", redis_command(sock, data_dir, True), env, user=user, stdin=config)
    return f"unix://:{password}@{sock}"
