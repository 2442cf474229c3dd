"""Fault: Redis refuses writes while the worker waits on its queue (NOREPLICAS here; a full
disk's MISCONF is the same error to Celery): Celery gives up ("Unrecoverable error") and
stops, and `stockade worker` runs itself again, in the same process, with a growing delay,
until Redis takes writes. Every submission accepted before and after is judged: lost 0,
stuck 0."""

from __future__ import annotations

import time

import redis

from tests.faults.conftest import FaultStack, Ledger, assert_settled


def _log(stack: FaultStack) -> bytes:
    return (stack.tmp / "worker.log").read_bytes()


def test_the_worker_runs_again_after_celery_gives_up(stack: FaultStack, ledger: Ledger) -> None:
    assert stack.worker is not None
    pid = stack.worker.pid
    for _ in range(2):
        assert ledger.submit() is not None, ledger.refused
    assert_settled(ledger.settle(timeout_s=60))
    client = redis.Redis(unix_socket_path=str(stack.sock))
    # No replica exists, so every write is refused, BRPOP (Celery's wait on the queue) too.
    client.config_set("min-replicas-to-write", "1")
    try:
        deadline = time.monotonic() + 30
        while b"running again" not in _log(stack) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert b"Unrecoverable error" in _log(stack), _log(stack)[-2000:].decode()
        assert b"running again in 1 s (restart 1 in a row)" in _log(stack)
        assert ledger.submit() is None and "503" in ledger.refused  # the API refuses too
    finally:
        client.config_set("min-replicas-to-write", "0")
    for _ in range(3):
        assert ledger.submit() is not None, ledger.refused
    assert_settled(ledger.settle(timeout_s=90))
    # The same process (re-run by exec): a supervisor that watches the PID sees no change.
    assert stack.worker.poll() is None and stack.worker.pid == pid
    client.close()
