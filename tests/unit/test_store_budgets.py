"""The store's budgets against a real redis-server: a client's open submissions and the queue
cap are checked in the script that stores, so they hold under concurrency, and a refusal
(or a Redis that refuses writes) stores nothing."""

from __future__ import annotations

import threading

import pytest
import redis

from tests.unit.redis_server import redis_url
from worker.jobs.model import Submission
from worker.jobs.store import NewSubmission, Refused, Store

__all__ = ["redis_url"]

ONE = [NewSubmission(Submission("print(1)", 71))]


@pytest.fixture
def store(redis_url: str) -> Store:
    return Store(redis_url, prefix="t:", ttl_s=60)


def enqueue(token: str) -> tuple[str, bytes]:
    return "q", token.encode()


def everything(store: Store) -> dict[bytes, object]:
    """Every key and what it holds, to compare before and after a refusal."""
    out: dict[bytes, object] = {}
    for key in store.redis.scan_iter():
        kind = store.redis.type(key)
        out[key] = {
            b"hash": store.redis.hgetall,
            b"set": store.redis.smembers,
            b"zset": lambda k: store.redis.zrange(k, 0, -1),
            b"list": lambda k: store.redis.lrange(k, 0, -1),
        }.get(kind, store.redis.get)(key)
    return out


def test_owner_and_client_are_recorded(store: Store) -> None:
    [token] = store.create_many(ONE, owner="d1gest", client="token:d1gest", enqueue=enqueue)
    rec = store.get(token)
    assert rec is not None and rec.owner == "d1gest"
    assert store.open_count("token:d1gest") == 1 and store.redis.lrange("q", 0, -1) == [
        token.encode()
    ]


def test_a_client_over_its_cap_is_refused_and_nothing_is_stored(store: Store) -> None:
    kw = {"client": "addr:10.0.0.1", "client_cap": 2, "enqueue": enqueue}
    first = store.create_many(ONE * 2, **kw)  # type: ignore[arg-type]
    before = everything(store)
    with pytest.raises(Refused) as e:
        store.create_many(ONE, **kw)  # type: ignore[arg-type]
    assert (e.value.budget, e.value.held, e.value.cap) == ("client", 2, 2)
    assert everything(store) == before
    # Another client is not held by this one's budget.
    store.create_many(ONE, client="addr:10.0.0.2", client_cap=2)
    # A finished submission frees its place; a deleted one too.
    store.start(first[0])
    store.finish(first[0], 3, {})
    assert store.open_count("addr:10.0.0.1") == 1
    [third] = store.create_many(ONE, **kw)  # type: ignore[arg-type]
    assert store.delete(third) and store.open_count("addr:10.0.0.1") == 1


def test_a_batch_is_all_or_nothing_against_the_queue_cap(store: Store) -> None:
    store.create_many(ONE * 2, queue_cap=3)
    before = everything(store)
    with pytest.raises(Refused) as e:
        store.create_many(ONE * 2, queue_cap=3)
    assert (e.value.budget, e.value.held) == ("queue", 2)
    assert everything(store) == before and store.queue_depth() == 2


def test_a_lost_record_does_not_hold_its_clients_place(store: Store) -> None:
    kw = {"client": "token:x", "client_cap": 1}
    [token] = store.create_many(ONE, **kw)  # type: ignore[arg-type]
    store.redis.delete(f"t:sub:{token}")  # evicted, or removed by hand, without finish()
    store.create_many(ONE, **kw)  # type: ignore[arg-type]
    assert store.open_count("token:x") == 1


def test_concurrent_creates_never_pass_the_cap(store: Store) -> None:
    refused: list[Refused] = []

    def client() -> None:
        for _ in range(10):
            try:
                store.create_many(ONE, client="addr:1", client_cap=5, queue_cap=1000)
            except Refused as e:
                refused.append(e)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.open_count("addr:1") == 5 and store.queue_depth() == 5
    assert len(refused) == 75


def test_a_redis_that_refuses_writes_stores_nothing(store: Store) -> None:
    store.create_many(ONE)
    before = everything(store)
    store.redis.config_set("maxmemory-policy", "noeviction")
    store.redis.config_set("maxmemory", 1)
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError, match="maxmemory"):
            store.create_many(ONE * 3, enqueue=enqueue, client="addr:1", client_cap=10)
    finally:
        store.redis.config_set("maxmemory", 0)
    assert everything(store) == before
