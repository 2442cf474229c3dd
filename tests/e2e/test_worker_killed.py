"""A worker child SIGKILLed in the middle of a job: the job is redelivered, or ends as Internal
Error after STOCKADE_MAX_ATTEMPTS; it never stays Processing. Both measured."""

from __future__ import annotations

import os
import signal
import time

import httpx

from tests.e2e.conftest import PYTHON, Stack, poll

SLEEPER = "import time\ntime.sleep(2)\nprint('slept')\n"


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def runs_box(pid: int) -> bool:
    """Does a box program (python3 script.py) run below this process?"""
    todo, seen = [pid], 0
    while todo and seen < 1000:
        p = todo.pop()
        seen += 1
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if b"script.py" in f.read():
                    return True
        except OSError:
            pass
        todo += children(p)
    return False


def busy_child(worker_pid: int, timeout_s: float = 15.0) -> int:
    """The pool child whose box is running the sleeper."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        busy = [c for c in children(worker_pid) if runs_box(c)]
        if busy:
            return busy[0]
        time.sleep(0.02)
    raise AssertionError("no worker child started the job's box")


def submit(api: httpx.Client) -> str:
    r = api.post("/submissions", json={"source_code": SLEEPER, "language_id": PYTHON})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def test_killed_child_job_is_redelivered(stack: Stack, api: httpx.Client) -> None:
    assert stack.worker is not None
    token = submit(api)
    victim = busy_child(stack.worker.pid)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    body = poll(api, token, timeout_s=30)
    took = time.monotonic() - killed
    print(f"\nkilled pid {victim}; final status {body['status']} {took:.2f}s after the kill")
    assert body["status"]["id"] == 3, body  # type: ignore[index]
    assert body["stdout"] == "slept\n"
    assert took < 15


def test_job_that_keeps_killing_workers_ends_internal_error(
    stack: Stack, api: httpx.Client
) -> None:
    assert stack.worker is not None
    token = submit(api)
    start = time.monotonic()
    kills = 0
    body: dict[str, object] = {}
    while time.monotonic() - start < 90:
        body = api.get(f"/submissions/{token}").json()
        if body["status"]["id"] > 2:  # type: ignore[index]
            break
        if kills < 3:
            try:
                os.kill(busy_child(stack.worker.pid), signal.SIGKILL)
                kills += 1
            except AssertionError:
                pass  # between deliveries; look again
        time.sleep(0.05)
    took = time.monotonic() - start
    print(f"\n{kills} kills; final status {body.get('status')} after {took:.2f}s")
    assert kills == 3
    assert body["status"]["id"] == 13, body  # type: ignore[index]
    assert "kept killing" in str(body.get("message"))
