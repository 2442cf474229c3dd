"""Fault 3: the API's gunicorn master SIGKILLed while jobs are in flight (its worker notices the
orphaning and exits on its own), then started again on the same port. The jobs live in Redis
and the Celery worker, so every accepted one finishes."""

from __future__ import annotations

import os
import signal
import time

import httpx

from tests.faults.conftest import FaultStack, Ledger, alive, assert_settled, children


def test_api_master_killed_and_restarted(stack: FaultStack, ledger: Ledger) -> None:
    assert stack.api is not None
    for _ in range(12):
        ledger.submit()
    assert len(ledger.accepted) == 12, ledger.refused
    port, master = stack.port, stack.api
    orphans = children(master.pid)
    os.kill(master.pid, signal.SIGKILL)
    master.wait(10)
    killed = time.monotonic()
    deadline = killed + 15
    while any(alive(p) for p in orphans) and time.monotonic() < deadline:
        time.sleep(0.1)
    orphans_gone = time.monotonic() - killed
    assert not any(alive(p) for p in orphans), f"gunicorn workers {orphans} outlived the master"
    stack.halt(master)
    stack.start_api_on(port)
    back = time.monotonic() - killed
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        ledger.client = client
        for _ in range(4):
            ledger.submit()
        outcome = ledger.settle(timeout_s=60)
    print(f"\norphaned API workers gone in {orphans_gone:.2f}s; API back on :{port} {back:.2f}s")
    assert outcome["accepted"] == 16, outcome
    assert_settled(outcome)
    assert outcome["statuses"] == {3: 16}, outcome
