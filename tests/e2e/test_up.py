"""`stockade up` for real, on a free loopback port: only the worker runs as root; the API and
the private Redis run as the unprivileged user, reach each other and the worker through a
socket only they (and root) may open, behind a password; then it stops by itself on SIGTERM
and leaves no process behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e.conftest import free_port

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
USER = "nobody"


def _status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _uids(pid: int) -> list[int]:
    return [int(u) for u in _status(pid)["Uid"].split()]  # real, effective, saved, fs


def _descendants(root: int) -> dict[int, str]:
    """pid -> command line of every process below `root`."""
    children: dict[int, list[int]] = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(name))
    found: dict[int, str] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        todo += children.get(pid, [])
    return found


def _subtree(pid: int, procs: dict[int, str]) -> set[int]:
    """`pid` and every process of `procs` below it."""
    out = {pid}
    grew = True
    while grew:
        grew = False
        for p in procs:
            if p not in out and int(_status(p)["PPid"]) in out:
                out.add(p)
                grew = True
    return out


@pytest.fixture
def up_dirs() -> Iterator[dict[str, str]]:
    """Run and state directories of this test's own (not /run/stockade and
    /var/lib/stockade, which another `stockade up` may be using), in a directory the
    unprivileged user may cross: the private Redis's socket and data live there."""
    if os.geteuid() != 0:
        pytest.skip("needs root: `stockade up` starts workers")
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (Debian redis-server)")
    top = tempfile.mkdtemp(prefix="stockade-up-")
    os.chmod(top, 0o755)
    try:
        yield {"STOCKADE_RUN_DIR": f"{top}/run", "STOCKADE_STATE_DIR": f"{top}/state"}
    finally:
        # Never delete through a mount a box left (the gvisor tier binds host paths there).
        with open("/proc/self/mountinfo") as f:
            left = [line.split()[4] for line in f if line.split()[4].startswith(top + "/")]
        if not left:
            shutil.rmtree(top)
    assert not left, f"mounts left under {top}: {left}"


def _api_reachable_by(user: str) -> bool:
    uid, gid = (subprocess.run(["id", flag, user], capture_output=True).stdout.strip().decode()
                for flag in ("-u", "-g"))  # fmt: skip
    done = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", sys.executable,
         "-c", "import service.app"],
        cwd="/", capture_output=True, timeout=30, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return done.returncode == 0


def test_up_runs_the_api_and_redis_unprivileged_and_the_worker_as_root(
    up_dirs: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "STOCKADE_REDIS_URL"},
        **up_dirs,
        "STOCKADE_UP_USER": USER,
        "STOCKADE_SELF_TEST": "0",
        "STOCKADE_API_PROCESSES": "1",
    }
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "up", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen: dict[int, str] = {}
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"serving on" not in log.read_bytes():
            assert up.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/api/v1/health"
        while True:  # the API answers through Redis, and sees the worker's heartbeat there
            body = httpx.get(url, timeout=10).json()
            if body.get("workers", 0) >= 1:
                break
            assert time.monotonic() < deadline, (body, log.read_text()[-3000:])
            time.sleep(0.5)
        # A job end to end: the API (unprivileged) stores and queues it, the worker (root)
        # takes it from the queue and runs it, both through the password-protected socket.
        job = {"source_code": "print(6 * 7)", "language_id": 71}
        done = httpx.post(f"http://127.0.0.1:{port}/submissions?wait=true", json=job, timeout=60)
        assert done.json()["stdout"] == "42\n", done.text
        seen = _descendants(up.pid)
        redis_pid = next(p for p, cmd in seen.items() if "redis-server" in cmd)
        api_pid = next(p for p, cmd in seen.items() if "gunicorn" in cmd and _ppid(p) == up.pid)
        worker_pid = next(p for p, cmd in seen.items() if "service.cli worker" in cmd)
        user_uid = int(subprocess.run(["id", "-u", USER], capture_output=True).stdout)
        for pid in _subtree(redis_pid, seen):
            assert _uids(pid) == [user_uid] * 4, (pid, seen[pid])
            assert _status(pid)["CapEff"] == "0000000000000000", (pid, seen[pid])
        # The API drops to the user when the user can reach this checkout; a clone in a
        # root-only directory (mktemp -d, /root) cannot be, and then up says so and why.
        if _api_reachable_by(USER):
            for pid in _subtree(api_pid, seen):
                assert _uids(pid) == [user_uid] * 4, (pid, seen[pid])
                assert _status(pid)["CapEff"] == "0000000000000000", (pid, seen[pid])
        else:
            assert b"WARNING: the API runs as root: " + USER.encode() in log.read_bytes()
            assert _uids(api_pid)[:2] == [0, 0]
        assert len(_subtree(api_pid, seen)) >= 2  # gunicorn's master and its worker
        assert _uids(worker_pid)[:2] == [0, 0]
        # The socket: the unprivileged user's own, closed to every other uid, and Redis
        # refuses a client without the password even there.
        sock = Path(up_dirs["STOCKADE_RUN_DIR"] + "-redis") / "redis.sock"
        st = sock.stat()
        assert st.st_uid == user_uid and st.st_mode & 0o077 == 0, oct(st.st_mode)
        assert sock.parent.stat().st_mode & 0o077 == 0
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(unix_socket_path=str(sock), socket_timeout=5).ping()
        # Nothing of the password on any command line.
        for pid, cmd in _descendants(up.pid).items():
            assert "requirepass" not in cmd and "unix://:" not in cmd, (pid, cmd)
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait(10)
        left = [p for p, cmd in seen.items() if _alive(p, cmd)]
        for pid in left:  # each child leads a session of its own
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert up.returncode == 0, log.read_text()[-3000:]
    assert not left, {p: seen[p] for p in left}


def _ppid(pid: int) -> int:
    return int(_status(pid)["PPid"])


def _alive(pid: int, cmd: str) -> bool:
    """Still running, and still the process seen (not a pid reused since)."""
    try:
        state = _status(pid)["State"]
        now = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, KeyError):
        return False
    return not state.startswith("Z") and now == cmd
