"""Fault 2: Redis (AOF on) stopped with SIGTERM under load and started again on the same socket
3 s later, without restarting the API or the worker. While it is down the API may refuse
(5xx); each refusal is counted. Every submission accepted before the stop, and every one after,
must reach a final status, and both the API and the worker must recover on their own."""

from __future__ import annotations

import threading
import time

from tests.faults.conftest import FaultStack, Ledger, assert_settled

DOWN_S = 3.0


def test_redis_restarted_under_load(stack: FaultStack, ledger: Ledger) -> None:
    assert stack.worker is not None and stack.api is not None
    stop = threading.Event()
    log: list[tuple[float, bool]] = []  # (time, accepted)

    def stream() -> None:
        while not stop.is_set():
            log.append((time.monotonic(), ledger.submit() is not None))
            time.sleep(0.1)

    feeder = threading.Thread(target=stream)
    feeder.start()
    try:
        deadline = time.monotonic() + 20
        while len(ledger.accepted) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        before = len(ledger.accepted)
        assert before >= 8, ledger.refused
        stack.halt(stack.redis)  # SIGTERM: Redis writes its AOF and exits
        stopped = time.monotonic()
        time.sleep(DOWN_S)
        stack.start_redis()
        restarted = time.monotonic()
        deadline = restarted + 30
        while time.monotonic() < deadline and not any(t > restarted and ok for t, ok in log):
            time.sleep(0.05)
        time.sleep(2.0)  # a little load after the recovery
    finally:
        stop.set()
        feeder.join()
    api_back = min((t for t, ok in log if ok and t > restarted), default=None)
    refused_down = sum(1 for t, ok in log if not ok and stopped <= t)
    outcome = ledger.settle(timeout_s=60)
    print(
        f"\naccepted before the stop: {before}; refused from the stop on: {refused_down} "
        f"{ledger.refused}; API accepting again "
        + (f"{api_back - restarted:.2f}s after the restart" if api_back else "never")
    )
    assert api_back is not None, "the API did not recover after Redis came back"
    assert stack.api.poll() is None and stack.worker.poll() is None
    assert_settled(outcome)
