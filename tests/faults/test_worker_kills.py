"""Fault 1: the worker's pool children SIGKILLed 20 times during a stream of 60 submissions.
Celery gives a killed child's job back to the queue (late acks); a job that keeps killing its
child ends as Internal Error after STOCKADE_MAX_ATTEMPTS. None is lost or left Processing."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

from tests.faults.conftest import FaultStack, Ledger, assert_settled, children

SUBMISSIONS = 60
KILLS = 20


def test_pool_children_killed_20_times(stack: FaultStack, ledger: Ledger) -> None:
    assert stack.worker is not None
    done = threading.Event()

    def stream() -> None:
        for _ in range(SUBMISSIONS):
            ledger.submit()
            time.sleep(0.1)
        done.set()

    feeder = threading.Thread(target=stream)
    start = time.monotonic()
    feeder.start()
    rng = random.Random(5)
    kills = 0
    try:
        while kills < KILLS and time.monotonic() - start < 60:
            time.sleep(rng.uniform(0.2, 0.6))
            pool = children(stack.worker.pid)
            if not pool:
                continue
            try:
                os.kill(rng.choice(pool), signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
    finally:
        feeder.join()
    outcome = ledger.settle(timeout_s=60)
    took = time.monotonic() - start
    print(f"\n{kills} kills; all final {took:.1f}s after the stream began")
    assert kills == KILLS
    assert stack.worker.poll() is None, "the worker's main process died"
    assert outcome["accepted"] == SUBMISSIONS, outcome
    assert_settled(outcome)
