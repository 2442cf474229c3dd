"""Run in the lab only (make test-v2): a real `stockade worker` started from a systemd scope
that delegates nothing re-runs itself in a transient scope with Delegate=yes, and the boxes
of a submission it serves land in that scope's subtree."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from sandbox.cgroups.delegation import own_cgroup, unit_of
from sandbox.cgroups.host import SCOPE_PREFIX
from service.commands import gunicorn_argv, redis_command
from tests.e2e.conftest import Stack, free_port, wait_until

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(
        os.environ.get("STOCKADE_IN_V2LAB") != "1",
        reason="needs the cgroup2 lab under systemd (make test-v2)",
    ),
]
MOUNT = "/sys/fs/cgroup"
START_S = 600.0  # a worker's and gunicorn's start-up under TCG, about 15x native
# A Python program that outlives the look at the cgroup tree below.
SLEEPER = {"source_code": "import time; time.sleep(4); print(42)", "language_id": 71}


def _box_dirs() -> set[str]:
    """Every box cgroup on the host: `<somewhere>/stockade/<box>`."""
    found = set()
    for top, dirs, _ in os.walk(MOUNT):
        if os.path.basename(top) == "stockade":
            found.update(os.path.join(top, d) for d in dirs)
            dirs.clear()
    return found


def test_worker_from_a_non_delegated_scope_reruns_in_a_delegated_one(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    env = {
        **os.environ,
        "STOCKADE_REDIS_URL": f"unix://{sock}",
        "STOCKADE_SELF_TEST": "0",  # minutes under TCG, and not the subject
        "STOCKADE_API_PROCESSES": "1",
    }
    stack = Stack(tmp_path, env["STOCKADE_REDIS_URL"], env)
    # This session's own launcher keeps its boxes in the lab job's unit; any other is the worker's.
    mine = MOUNT + unit_of(own_cgroup(Path("/proc/self/cgroup").read_text()))[0] + "/"
    try:
        proc, log = stack.spawn("redis", redis_command(str(sock), str(tmp_path)), env)
        wait_until("redis", sock.exists, proc, log, 60)
        # `systemd-run --scope` execs its command, so the worker keeps the pid it is given.
        undelegated = ["systemd-run", "--scope", "--quiet", "-p", "Delegate=no", "--"]
        argv = [*undelegated, sys.executable, "-m", "service.cli", "worker", "--workers", "1"]
        worker, wlog = stack.spawn("worker", argv, env)
        wait_until("worker", lambda: b" ready." in wlog.read_bytes(), worker, wlog, START_S)
        assert b"re-running in a transient scope with Delegate=yes" in wlog.read_bytes()
        scope_dir, scope = unit_of(own_cgroup(Path(f"/proc/{worker.pid}/cgroup").read_text()))
        assert scope == f"{SCOPE_PREFIX}{worker.pid}.scope", scope
        assert Path(MOUNT + scope_dir, "cgroup.procs").read_text() == "", "not in its leaf"

        port = free_port()
        api, alog = stack.spawn("api", gunicorn_argv("127.0.0.1", port), env)
        url = f"http://127.0.0.1:{port}"

        def listening() -> bool:
            try:
                return httpx.get(url + "/api/v1/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until("api", listening, api, alog, START_S)
        token = httpx.post(url + "/submissions", json=SLEEPER, timeout=60).json()["token"]
        seen: set[str] = set()
        body: dict[str, object] = {}
        deadline = time.monotonic() + START_S
        while body.get("status", {"id": 1})["id"] <= 2:  # type: ignore[index]
            assert time.monotonic() < deadline, (body, wlog.read_text()[-3000:])
            seen |= {d for d in _box_dirs() if not d.startswith(mine)}
            body = httpx.get(f"{url}/submissions/{token}", timeout=60).json()
            time.sleep(0.05)
        assert body["stdout"] == "42\n", (body, wlog.read_text()[-3000:])
        assert seen, "no box cgroup of the worker's was seen while its submission ran"
        inside = MOUNT + scope_dir + "/stockade/"
        assert all(d.startswith(inside) for d in seen), (inside, seen)
        assert not Path(MOUNT, "stockade").exists(), "a box node at the hierarchy's root"
    finally:
        stack.close()  # each process by its pid, then its own process group
