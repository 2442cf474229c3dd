"""Fault 5: the queue filled to STOCKADE_MAX_QUEUE_DEPTH=5 while no worker runs: the sixth
POST answers 503; once a worker starts, the queue drains and every accepted one finishes."""

from __future__ import annotations

import time

import httpx

from tests.faults.conftest import FaultStack, Ledger, assert_settled

CAP = 5


def test_full_queue_answers_503_then_drains(bare_stack: FaultStack) -> None:
    # One client fills the whole queue here (by default it may fill half of it).
    bare_stack.start_api_on(STOCKADE_MAX_QUEUE_DEPTH=str(CAP), STOCKADE_MAX_QUEUE_SHARE="1")
    with httpx.Client(base_url=bare_stack.url, timeout=10) as client:
        ledger = Ledger(client)
        for _ in range(CAP + 3):
            ledger.submit()
        assert len(ledger.accepted) == CAP, ledger.refused
        assert ledger.refused == {"503": 3}, ledger.refused
        r = client.post("/submissions", json={"source_code": "print(1)", "language_id": 71})
        assert r.status_code == 503 and "queue is full" in r.text, r.text
        start = time.monotonic()
        bare_stack.worker = bare_stack.start_worker()
        outcome = ledger.settle(timeout_s=60)
        drained = time.monotonic() - start
        assert ledger.submit() is not None  # room again
        outcome = ledger.settle(timeout_s=30)
    print(f"\ndrained {drained:.1f}s after the worker started")
    assert_settled(outcome)
    assert outcome["statuses"] == {3: CAP + 1}, outcome
