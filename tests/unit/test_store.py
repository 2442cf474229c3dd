"""The Redis store against a real redis-server: lifecycle, wait, paging, counts, TTL."""

from __future__ import annotations

import threading
import time

import pytest

from tests.unit.redis_server import redis_url
from worker.jobs.model import Submission
from worker.jobs.store import Store

__all__ = ["redis_url"]


@pytest.fixture
def store(redis_url: str) -> Store:
    return Store(redis_url, prefix="t:", ttl_s=60)


def test_create_get_start_finish(store: Store) -> None:
    sub = Submission(source_code="print(1)", language_id=71)
    token = store.create(sub, callback_url="http://x/cb", meta={"api": "judge0"})
    rec = store.get(token)
    assert rec is not None
    assert (rec.status_id, rec.submission, rec.attempts) == (1, sub, 0)
    assert rec.callback_url == "http://x/cb" and rec.meta == {"api": "judge0"}
    assert not rec.final and rec.started_at is None
    assert store.queue_depth() == 1
    started = store.start(token)
    assert started is not None and started.status_id == 2 and started.attempts == 1
    assert started.started_at is not None
    assert (store.queue_depth(), store.running()) == (0, 1)
    store.finish(token, 3, {"status": {"id": 3}, "timings": {"compile_s": 0.0, "run_s": 0.02}})
    rec = store.get(token)
    assert rec is not None and rec.final and rec.status_id == 3
    assert rec.result is not None and rec.result["status"] == {"id": 3}
    assert rec.finished_at is not None
    assert (store.queue_depth(), store.running()) == (0, 0)
    assert store.counts() == {3: 1}
    hist = store.histograms()
    assert hist["end_to_end"]["count"] == 1 and hist["run"]["count"] == 1
    assert 0 < store.redis.ttl(f"t:sub:{token}") <= 60


def test_start_twice_counts_attempts_and_final_is_untouched(store: Store) -> None:
    token = store.create(Submission())
    store.start(token)
    again = store.start(token)
    assert again is not None and again.attempts == 2
    store.finish(token, 13, None, "worker died")
    store.finish(token, 13, None, "worker died")  # redelivered: counted once
    after = store.start(token)
    assert after is not None and after.final and after.attempts == 2
    assert after.message == "worker died"
    assert store.counts() == {13: 1}
    assert store.start("nope") is None


def test_finish_rejects_non_final(store: Store) -> None:
    with pytest.raises(ValueError, match="status_id"):
        store.finish(store.create(Submission()), 2, None)


def test_wait_returns_on_finish(store: Store) -> None:
    token = store.create(Submission())
    threading.Timer(0.1, store.finish, (token, 4, {"x": 1})).start()
    t0 = time.monotonic()
    rec = store.wait(token, 5)
    assert rec is not None and rec.status_id == 4
    assert time.monotonic() - t0 < 1


def test_wait_already_final_and_timeout(store: Store) -> None:
    token = store.create(Submission())
    assert store.wait(token, 0.05) is None
    store.finish(token, 3, None)
    rec = store.wait(token, 1)
    assert rec is not None and rec.status_id == 3
    assert store.wait("missing", 0.05) is None


def test_tokens_paged_newest_first_and_delete(store: Store) -> None:
    tokens = [store.create(Submission()) for _ in range(5)]
    page, total = store.tokens(1, 2)
    assert total == 5 and page == tokens[::-1][:2]
    assert store.tokens(3, 2) == ([tokens[0]], 5)
    assert store.delete(tokens[0]) and not store.delete(tokens[0])
    assert store.get(tokens[0]) is None
    assert store.tokens(1, 10)[1] == 4 and store.queue_depth() == 4
    assert [r.token if r else None for r in store.get_many([tokens[1], "x"])] == [tokens[1], None]


def test_disabled_languages(store: Store) -> None:
    assert store.disabled_languages() == set()
    store.set_disabled_languages([71, 54])
    assert store.disabled_languages() == {71, 54}
    store.set_disabled_languages([])
    assert store.disabled_languages() == set()
