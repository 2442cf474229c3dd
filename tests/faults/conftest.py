"""Faults against the real stack on loopback (issue 5): a private Redis with AOF on a unix
socket, a Celery worker (concurrency 2, as root) and the API under gunicorn. Each test gets a
stack of its own, injects one fault, then does the same accounting: every submission the API
accepted reaches a final status (lost 0, stuck 0), and once the stack is stopped no box
process, cgroup or mount it made is left behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from service.commands import gunicorn_argv, redis_command
from tests.e2e.conftest import PYTHON, Stack, free_port, wait_until

SLEEPER = "import time\ntime.sleep(0.3)\nprint(1)\n"
SLOT_UIDS = range(60000, 60064)
SETTLE_S = 10.0  # box inits and cgroups of a stopped worker go within this long
_OWNER = re.compile(r"(?:^|/)(?:[a-z]+-?)?(\d+)-\d+$")  # 12-3, vm12-3, gvisor-12-3


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.privileged)
            item.add_marker(pytest.mark.timeout(120))


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# --- Leftovers of boxes whose worker is gone --------------------------------------------------


def _cgroup_owner(name: str) -> int | None:
    m = _OWNER.search(name)
    return int(m.group(1)) if m else None


def box_cgroups() -> set[str]:
    found: set[str] = set()
    for root, _dirs, _files in os.walk("/sys/fs/cgroup"):
        if os.path.basename(os.path.dirname(root)) == "stockade":
            found.add(root)
    return found


def _status(pid: int) -> tuple[int, int] | None:
    """(uid, ppid) of a process, None when it is gone."""
    try:
        uid = ppid = -1
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    uid = int(line.split()[1])
                elif line.startswith("PPid:"):
                    ppid = int(line.split()[1])
        return uid, ppid
    except OSError:
        return None


def box_processes() -> dict[int, int]:
    """Processes of the box uids: pid -> their nearest ancestor outside the boxes (a live
    launcher's zygote, or pid 1 once their launcher is gone: an orphan)."""
    found: dict[int, int] = {}
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        st = _status(pid)
        if st is None or st[0] not in SLOT_UIDS:
            continue
        up, hops = st[1], 0
        while hops < 64:
            ust = _status(up)
            if ust is None or ust[0] not in SLOT_UIDS:
                break
            up, hops = ust[1], hops + 1
        found[pid] = up
    return found


def box_mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f if "stockade" in line}


@dataclass
class Snapshot:
    cgroups: set[str]
    processes: dict[int, int]
    mounts: set[str]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(box_cgroups(), box_processes(), box_mounts())


def leaked(before: Snapshot) -> dict[str, list[str]]:
    """What appeared since `before` and belongs to no live launcher (cgroups are named
    <launcher pid>-<n>, with a tier's prefix or not; other live workers' boxes are not ours,
    and a box process whose launcher died is reparented to pid 1)."""
    now = Snapshot.take()

    def orphan(path: str) -> bool:
        owner = _cgroup_owner(path.rstrip("/"))
        return owner is None or not alive(owner)

    return {
        "cgroups": sorted(c for c in now.cgroups - before.cgroups if orphan(c)),
        "processes": sorted(
            f"pid {p} (under pid {up})"
            for p, up in now.processes.items()
            if p not in before.processes and (up <= 1 or not alive(up))
        ),
        "mounts": sorted(now.mounts - before.mounts),
    }


# --- The stack --------------------------------------------------------------------------------


@dataclass
class FaultStack(Stack):
    """tests.e2e's Stack plus handles on each process so that a fault can stop and restart it."""

    sock: Path = Path()
    redis: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None
    port: int = 0
    events: list[str] = field(default_factory=list)

    def start_redis(self, data_dir: Path | None = None) -> None:
        """Redis on self.sock, its AOF in `data_dir` (the test's tmp dir when None)."""
        self.sock.unlink(missing_ok=True)
        argv = redis_command(str(self.sock), str(data_dir or self.tmp))
        proc, log = self.spawn("redis", argv, self.base_env)
        wait_until("redis", self.sock.exists, proc, log, 10)
        self.redis = proc

    def start_api_on(self, port: int | None = None, **env: str) -> None:
        """The API on `port` (a free one when None), as self.api / self.url."""
        self.port = port or free_port()
        e = {**self.base_env, "STOCKADE_API_PROCESSES": "1", **env}
        proc, log = self.spawn("api", gunicorn_argv("127.0.0.1", self.port), e)

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_until("API", listening, proc, log, 30)
        self.api, self.url = proc, f"http://127.0.0.1:{self.port}"

    def halt(self, proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
        """Stop one process by its pid (and its group, which it leads) and forget it."""
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:  # what is left of its group (a group's id is not reused while it has members)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.wait(10)
        if proc in self.procs:
            self.procs.remove(proc)


@dataclass
class Ledger:
    """Every submission the API accepted, and what became of it."""

    client: httpx.Client
    accepted: list[str] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)  # "503", "ConnectError"... -> count

    def submit(self, body: dict[str, object] | None = None) -> str | None:
        """POST one submission; the token when accepted (201), else None (counted by kind)."""
        try:
            r = self.client.post(
                "/submissions", json=body or {"source_code": SLEEPER, "language_id": PYTHON}
            )
        except httpx.HTTPError as e:
            kind = type(e).__name__
        else:
            if r.status_code == 201:
                token = str(r.json()["token"])
                self.accepted.append(token)
                return token
            kind = str(r.status_code)
        self.refused[kind] = self.refused.get(kind, 0) + 1
        return None

    def settle(self, timeout_s: float = 60.0) -> dict[str, object]:
        """Poll every accepted token until final or the deadline; the accounting."""
        deadline = time.monotonic() + timeout_s
        final: dict[str, int] = {}
        last: dict[str, int] = {}
        while True:
            for token in self.accepted:
                if token in final:
                    continue
                try:
                    r = self.client.get(f"/submissions/{token}", params={"fields": "status"})
                except httpx.HTTPError:
                    continue
                if r.status_code == 404:
                    last[token] = 0
                    continue
                if r.status_code != 200:
                    continue
                status = int(r.json()["status"]["id"])
                last[token] = status
                if status > 2:
                    final[token] = status
            if len(final) == len(self.accepted) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        statuses: dict[int, int] = {}
        for s in final.values():
            statuses[s] = statuses.get(s, 0) + 1
        open_ = [t for t in self.accepted if t not in final]
        return {
            "accepted": len(self.accepted),
            "final": len(final),
            "lost": sum(1 for t in open_ if last.get(t, 0) == 0),
            "stuck_queued": sum(1 for t in open_ if last.get(t) == 1),
            "stuck_processing": sum(1 for t in open_ if last.get(t) == 2),
            "statuses": dict(sorted(statuses.items())),
            "refused": dict(self.refused),
        }


def assert_settled(outcome: dict[str, object]) -> None:
    print(f"\naccounting: {outcome}")
    assert outcome["lost"] == 0, outcome
    assert outcome["stuck_queued"] == 0, outcome
    assert outcome["stuck_processing"] == 0, outcome
    assert outcome["final"] == outcome["accepted"], outcome


def base_env(sock: Path) -> dict[str, str]:
    return {
        **os.environ,
        "STOCKADE_REDIS_URL": f"unix://{sock}",
        "STOCKADE_CALLBACK_ALLOW_PRIVATE": "1",
        "STOCKADE_CALLBACK_BACKOFF_S": "0.1",
        "STOCKADE_MAX_ATTEMPTS": "3",
        "STOCKADE_SELF_TEST": "0",  # the e2e tier self-tests; here start-up must be quick
        "STOCKADE_ACCESS_LOG": "-",
        "STOCKADE_LOG_LEVEL": "INFO",  # the worker says " ready." at INFO
    }


@pytest.fixture
def bare_stack(tmp_path: Path) -> Iterator[FaultStack]:
    """Redis alone, for tests that start the worker and the API with settings of their own;
    stopped at the end, then checked for leftovers."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the worker starts boxes")
    before = Snapshot.take()
    sock = tmp_path / "redis.sock"
    s = FaultStack(tmp_path, f"unix://{sock}", base_env(sock), sock=sock)
    try:
        s.start_redis()
        yield s
    finally:
        s.close()
    deadline = time.monotonic() + SETTLE_S
    while True:
        left = leaked(before)
        if not any(left.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    print(f"leftovers after the stack stopped: {left}")
    assert not any(left.values()), left


@pytest.fixture
def stack(bare_stack: FaultStack) -> FaultStack:
    """Redis, a worker (concurrency 2) and the API (1 process)."""
    bare_stack.worker = bare_stack.start_worker()
    bare_stack.start_api_on()
    return bare_stack


@pytest.fixture
def ledger(stack: FaultStack) -> Iterator[Ledger]:
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        yield Ledger(client)
