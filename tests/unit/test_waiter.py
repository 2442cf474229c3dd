"""The API's shared wait=true listener, against a real Redis: woken by finish(), never misses a
result that was already final, times out, and hands over when its subscription is lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from service.waiter import Waiter, channel_pattern
from tests.unit.redis_server import redis_url
from worker.jobs.model import Submission
from worker.jobs.store import Store

__all__ = ["redis_url"]


@pytest.fixture
def store(redis_url: str) -> Store:
    return Store(redis_url, prefix="t[1]:", ttl_s=60)


@pytest.fixture
def waiter(redis_url: str) -> Iterator[Waiter]:
    w = Waiter(redis_url, "t[1]:")
    yield w
    w.close()


def test_pattern_escapes_the_prefix() -> None:
    assert channel_pattern("t[1]:") == r"t\[1\]:done:*"


def test_woken_by_finish(store: Store, waiter: Waiter) -> None:
    token = store.create(Submission())
    threading.Timer(0.2, store.finish, (token, 4, {"x": 1})).start()
    t0 = time.monotonic()
    served, rec = waiter.wait(token, lambda: store.get(token), 5)
    assert served and rec is not None and rec.status_id == 4
    assert time.monotonic() - t0 < 1


def test_many_waiters_on_one_listener(store: Store, waiter: Waiter) -> None:
    tokens = [store.create(Submission()) for _ in range(20)]
    got: dict[str, int] = {}

    def wait(token: str) -> None:
        _, rec = waiter.wait(token, lambda: store.get(token), 5)
        got[token] = rec.status_id if rec else 0

    threads = [threading.Thread(target=wait, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    time.sleep(0.2)
    for i, token in enumerate(tokens):
        store.finish(token, 3 + i % 3, None)
    for t in threads:
        t.join(5)
    assert got == {t: 3 + i % 3 for i, t in enumerate(tokens)}


def test_already_final_unknown_and_timeout(store: Store, waiter: Waiter) -> None:
    token = store.create(Submission())
    assert waiter.wait(token, lambda: store.get(token), 0.1) == (True, None)
    store.finish(token, 3, None)
    served, rec = waiter.wait(token, lambda: store.get(token), 1)
    assert served and rec is not None and rec.status_id == 3
    assert waiter.wait("missing", lambda: store.get("missing"), 0.1) == (True, None)


def test_lost_subscription_hands_over(store: Store, waiter: Waiter) -> None:
    token = store.create(Submission())
    assert waiter.wait(token, lambda: store.get(token), 0.05) == (True, None)  # subscribed
    # Drop the listener's connection as a Redis restart would: the waiter is woken and says
    # it cannot serve, so the caller falls back to a subscription of its own.
    threading.Timer(0.2, store.redis.client_kill_filter, kwargs={"_type": "pubsub"}).start()
    t0 = time.monotonic()
    served, rec = waiter.wait(token, lambda: store.get(token), 5)
    assert (served, rec) == (False, None) and time.monotonic() - t0 < 2
    # It subscribes again by itself and serves the next wait.
    threading.Timer(0.3, store.finish, (token, 3, None)).start()
    deadline = time.monotonic() + 5
    while True:
        served, rec = waiter.wait(token, lambda: store.get(token), 2)
        if served or time.monotonic() > deadline:
            break
    assert served and rec is not None and rec.status_id == 3
