"""The real stack on loopback: a private redis-server on a unix socket, a Celery worker
(concurrency 2, as root) and the API under gunicorn on a free 127.0.0.1 port. Session-scoped,
bounded in time, and always torn down (each process by its pid)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from service.commands import gunicorn_argv, redis_command

START_TIMEOUT_S = 90.0  # the worker self-tests every language before it says ready
STOP_TIMEOUT_S = 30.0
CALLBACK_SECRET = "e2e-secret"
PYTHON = 71
CPP = 54


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.privileged)
            item.add_marker(pytest.mark.timeout(300))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path,
               timeout_s: float = START_TIMEOUT_S) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready in {timeout_s}s:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process, then SIGKILL to its process group (it leads one of its own)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(10)


@dataclass
class Stack:
    """The running processes and how to reach them."""

    tmp: Path
    redis_url: str
    base_env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    worker: subprocess.Popen[bytes] | None = None
    url: str = ""

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> tuple[
        subprocess.Popen[bytes], Path
    ]:  # fmt: skip
        log = self.tmp / f"{name}.log"
        out = open(log, "ab")  # noqa: SIM115 (the child holds it)
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()
        self.procs.append(proc)
        return proc, log

    def start_api(self, name: str, **env: str) -> str:
        """Another API process over the same Redis, with these STOCKADE_ settings."""
        port = free_port()
        e = {**self.base_env, "STOCKADE_API_PROCESSES": "1", **env}
        proc, log = self.spawn(name, gunicorn_argv("127.0.0.1", port), e)

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_until(f"API {name}", listening, proc, log, 30)
        return f"http://127.0.0.1:{port}"

    def start_worker(self, name: str = "worker", **env: str) -> subprocess.Popen[bytes]:
        """A worker (concurrency 2) with these STOCKADE_ settings; its log is tmp/<name>.log."""
        argv = [sys.executable, "-m", "service.cli", "worker", "--workers", "2"]
        proc, log = self.spawn(name, argv, {**self.base_env, **env})
        wait_until(name, lambda: b" ready." in log.read_bytes(), proc, log)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if os.geteuid() != 0:
        pytest.skip("needs root: the worker starts boxes")
    tmp = tmp_path_factory.mktemp("e2e")
    sock = tmp / "redis.sock"
    env = {
        **os.environ,
        "STOCKADE_REDIS_URL": f"unix://{sock}",
        "STOCKADE_CALLBACK_ALLOW_PRIVATE": "1",
        "STOCKADE_CALLBACK_SECRET": CALLBACK_SECRET,
        "STOCKADE_CALLBACK_BACKOFF_S": "0.1",
        "STOCKADE_MAX_ATTEMPTS": "3",
        "STOCKADE_ACCESS_LOG": "-",
    }
    s = Stack(tmp, env["STOCKADE_REDIS_URL"], env)
    try:
        proc, log = s.spawn("redis", redis_command(str(sock), str(tmp)), env)
        wait_until("redis", sock.exists, proc, log, 10)
        s.worker = s.start_worker()
        s.url = s.start_api("api")
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        yield client


def poll(
    client: httpx.Client, token: str, timeout_s: float = 30.0, **params: str
) -> dict[str, object]:
    """GET the submission until it is final (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, object] = client.get(f"/submissions/{token}", params=params).json()
        status = body.get("status")
        if isinstance(status, dict) and status.get("id", 1) > 2:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{token} not final after {timeout_s}s: {body}")
        time.sleep(0.05)
