"""The Redis store of submissions: the service creates and reads, the worker starts and finishes.

Keys, all under `prefix`:
  sub:{token}        hash: one Record (submission, status, result, timestamps, attempts, ...)
  done:{token}       pub/sub channel: finish() publishes the final status id on it
  tokens             sorted set: every token by created_at (GET /submissions, newest first)
  queued, running    sets: tokens in status 1 and 2 (queue depth, /workers)
  counts             hash: final status id -> how many ended so (/statistics, /metrics)
  counts:languages   hash: language id -> how many finished (/statistics)
  hist:{name}        hash: latency histogram buckets, count and sum (see LATENCY_BUCKETS_S)
  languages:disabled set: language ids whose self-test failed on some worker
  open:{client}      set: the client's tokens in status 1 or 2 (its share of the queue)
A record in status 1 or 2 never expires (nothing accepted is lost); a final one expires
`ttl_s` seconds after finish().
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from worker.jobs import scripts
from worker.jobs.model import Submission
from worker.jobs.rules import InvalidSubmission, decode

IN_QUEUE = 1
PROCESSING = 2
INTERNAL_ERROR = 13
# Upper bounds (seconds) of the latency histograms' buckets, Prometheus-style.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.25, 2.5, 5.0, 10.0, 30.0)
HISTOGRAMS = ("queue_wait", "compile", "run", "end_to_end")
_FIELDS = ("submission", "status_id", "message", "created_at", "attempts", "callback_url",
           "meta", "language_id", "owner", "client_set")  # fmt: skip


@dataclass(frozen=True)
class NewSubmission:
    """One submission to create: what it asks, where to call back, and how it was asked."""

    submission: Submission
    callback_url: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Refused(Exception):
    """create_many() stored nothing: `budget` ("queue" or "client") would be overdrawn.
    `held` is what it held already, `cap` its size."""

    def __init__(self, budget: str, held: int, cap: int) -> None:
        super().__init__(f"{budget}: {held} open of {cap}")
        self.budget = budget
        self.held = held
        self.cap = cap


@dataclass(frozen=True)
class Record:
    """One stored submission and where it stands. Times are Unix seconds."""

    token: str
    submission: Submission
    status_id: int  # 1 In Queue, 2 Processing, 3.. final (Judge0 ids)
    result: dict[str, Any] | None  # JudgeResult.to_dict() when final
    message: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    callback_url: str | None
    meta: dict[str, Any]  # which API made it, base64 flag, wanted fields...
    # A digest of the token that created it ("" when the API had no auth), never the token.
    owner: str = ""
    # Why the stored submission breaks the rules (worker.jobs.rules), "" when it keeps them:
    # a record written past the API is judged by no one (`submission` is then a blank one).
    invalid: str = ""

    @property
    def final(self) -> bool:
        return self.status_id > PROCESSING


class Store:
    """Submissions in Redis. Every method is one round trip unless it says otherwise."""

    def __init__(self, url: str, prefix: str = "stockade:", ttl_s: int = 86400) -> None:
        self.redis: redis.Redis = redis.Redis.from_url(url)
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._create = self.redis.register_script(scripts.CREATE)
        self._start = self.redis.register_script(scripts.START)
        self._finish = self.redis.register_script(scripts.FINISH)

    def _key(self, token: str) -> str:
        return f"{self.prefix}sub:{token}"

    def channel(self, token: str) -> str:
        return f"{self.prefix}done:{token}"

    def open_set(self, client: str) -> str:
        return f"{self.prefix}open:{client}"

    def create(
        self,
        sub: Submission,
        *,
        callback_url: str | None = None,
        meta: dict[str, Any] | None = None,
        enqueue: Callable[[str], tuple[str, bytes]] | None = None,
    ) -> str:
        """Stores one submission in status 1 and returns its token (see create_many)."""
        return self.create_many([NewSubmission(sub, callback_url, meta or {})], enqueue=enqueue)[0]

    def create_many(
        self,
        items: Sequence[NewSubmission],
        *,
        enqueue: Callable[[str], tuple[str, bytes]] | None = None,
        owner: str = "",
        client: str = "",
        queue_cap: int | None = None,
        client_cap: int | None = None,
    ) -> list[str]:
        """Stores new submissions in status 1 and returns their tokens, or raises Refused
        having stored none. `enqueue(token)` gives (list key, message) to LPUSH with each:
        the broker is this Redis, so a submission is stored and queued together or not at all
        (a Redis that refuses writes, its disk full say, can never leave a stored record that
        no task will ever judge). The queue may then hold at most `queue_cap` in status 1,
        and `client` at most `client_cap` in status 1 or 2, checked in the same script."""
        caps = [-1 if queue_cap is None else queue_cap, -1 if client_cap is None else client_cap]
        for attempt in (1, 2):
            tokens = [str(uuid.uuid4()) for _ in items]
            now = time.time()
            queue_key, args = f"{self.prefix}no-queue", list[str | int | bytes]()
            for token, item in zip(tokens, items, strict=True):
                message = b""
                if enqueue is not None:
                    queue_key, message = enqueue(token)
                args += [token, message, *self._fields(item, now, owner, client)]
            keys = [f"{self.prefix}queued", f"{self.prefix}tokens", self.open_set(client),
                    queue_key, *(self._key(t) for t in tokens)]  # fmt: skip
            head: list[str | int | bytes] = [*caps, repr(now), len(_FIELDS), *_FIELDS]
            code, held = cast(list[int], self._create(keys=keys, args=[*head, *args]))
            if code == 0:
                return tokens
            # A record lost without finish() (evicted, or deleted by hand) would hold its
            # client's budget for good: drop such tokens from the set, then try once more.
            if code == 2 and attempt == 1 and self._prune_open(client):
                continue
            budget, cap = ("queue", caps[0]) if code == 1 else ("client", caps[1])
            raise Refused(budget, int(held), cap)
        raise AssertionError("unreachable")

    def _fields(self, item: NewSubmission, now: float, owner: str, client: str) -> list[str | int]:
        """A new record's values, in _FIELDS' order."""
        sub = item.submission
        return [
            sub.to_json(),
            IN_QUEUE,
            "",
            repr(now),
            0,
            item.callback_url or "",
            json.dumps(item.meta),
            # Apart from the submission's JSON so finish() can count it without decoding.
            sub.language_id,
            owner,
            self.open_set(client),
        ]

    def _prune_open(self, client: str) -> bool:
        """Drops the client's open tokens whose record is gone or final; True if any was."""
        key = self.open_set(client)
        tokens = [t.decode() for t in cast(set[bytes], self.redis.smembers(key))]
        pipe = self.redis.pipeline(transaction=False)
        for t in tokens:
            pipe.hget(self._key(t), "status_id")
        stale = [
            t
            for t, status in zip(tokens, pipe.execute(), strict=True)
            if status is None or int(status) > PROCESSING
        ]
        if stale:
            self.redis.srem(key, *stale)
        return bool(stale)

    def open_count(self, client: str) -> int:
        """The client's submissions in status 1 or 2."""
        return int(self.redis.scard(self.open_set(client)))

    def get(self, token: str) -> Record | None:
        return _record(token, cast(dict[bytes, bytes], self.redis.hgetall(self._key(token))))

    def get_many(self, tokens: list[str]) -> list[Record | None]:
        """Several records in one round trip, in the order asked."""
        pipe = self.redis.pipeline(transaction=False)
        for token in tokens:
            pipe.hgetall(self._key(token))
        return [_record(t, raw) for t, raw in zip(tokens, pipe.execute(), strict=True)]

    def start(self, token: str) -> Record | None:
        """Status 2 and attempts += 1, atomically; None if the token is unknown. A record
        that is already final comes back unchanged: check `.final` and skip the job."""
        keys = [self._key(token), f"{self.prefix}queued", f"{self.prefix}running"]
        raw = self._start(keys=keys, args=[repr(time.time()), token])
        if raw is None:
            return None
        pairs = cast(list[bytes], raw)
        return _record(token, dict(zip(pairs[::2], pairs[1::2], strict=True)))

    def finish(
        self,
        token: str,
        status_id: int,
        result: dict[str, Any] | None,
        message: str = "",
    ) -> None:
        """Final status; sets finished_at, starts the TTL, publishes on channel(token).
        `result` may hold "timings": {"compile_s": float, "run_s": float} (wall seconds)
        for the latency histograms."""
        if status_id <= PROCESSING:
            raise ValueError(f"status_id: must be final (3..14), got {status_id}")
        timings = (result or {}).get("timings") or {}
        keys = [
            self._key(token),
            f"{self.prefix}queued",
            f"{self.prefix}running",
            f"{self.prefix}counts",
            self.channel(token),
            f"{self.prefix}counts:languages",
        ]
        args: list[Any] = [
            token,
            status_id,
            json.dumps(result) if result is not None else "",
            message,
            repr(time.time()),
            self.ttl_s,
            f"{self.prefix}hist:",
            timings.get("compile_s", -1),
            timings.get("run_s", -1),
            *LATENCY_BUCKETS_S,
        ]
        self._finish(keys=keys, args=args)

    def wait(self, token: str, timeout_s: float) -> Record | None:
        """The record as soon as it is final, or None after timeout_s (or if unknown).
        Subscribes before reading, so a finish() in between cannot be missed."""
        pubsub = self.redis.pubsub()
        try:
            pubsub.subscribe(self.channel(token))
            deadline = time.monotonic() + timeout_s
            # The confirmation proves the subscription is live before the read below.
            while pubsub.get_message(timeout=max(0.0, deadline - time.monotonic())) is None:
                if time.monotonic() >= deadline:
                    return None
            record = self.get(token)
            while record is not None and not record.final:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if pubsub.get_message(timeout=left) is not None:
                    record = self.get(token)
            return record if record is not None and record.final else None
        finally:
            pubsub.close()

    def delete(self, token: str) -> bool:
        open_set = self.redis.hget(self._key(token), "client_set")
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._key(token))
        if open_set:
            pipe.srem(open_set, token)
        pipe.zrem(f"{self.prefix}tokens", token)
        pipe.srem(f"{self.prefix}queued", token)
        pipe.srem(f"{self.prefix}running", token)
        return bool(pipe.execute()[0])

    def tokens(self, page: int, per_page: int) -> tuple[list[str], int]:
        """One page (from 1) of tokens, newest first, and the total. Drops expired ones."""
        index = f"{self.prefix}tokens"
        old = cast(list[bytes], self.redis.zrangebyscore(index, 0, time.time() - self.ttl_s))
        if old:
            pipe = self.redis.pipeline(transaction=False)
            for t in old:
                pipe.exists(self._key(t.decode()))
            gone = [t for t, alive in zip(old, pipe.execute(), strict=True) if not alive]
            if gone:
                self.redis.zrem(index, *gone)
        start = (max(page, 1) - 1) * per_page
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrevrange(index, start, start + per_page - 1)
        pipe.zcard(index)
        page_tokens, total = pipe.execute()
        return [t.decode() for t in page_tokens], int(total)

    def queue_depth(self) -> int:
        """Submissions in status 1."""
        return int(self.redis.scard(f"{self.prefix}queued"))

    def running(self) -> int:
        """Submissions in status 2."""
        return int(self.redis.scard(f"{self.prefix}running"))

    def counts(self) -> dict[int, int]:
        """How many submissions ended in each final status id (since the store began)."""
        raw = cast(dict[bytes, bytes], self.redis.hgetall(f"{self.prefix}counts"))
        return {int(k): int(v) for k, v in raw.items()}

    def language_counts(self) -> dict[int, int]:
        """How many submissions of each language id reached a final status."""
        raw = cast(dict[bytes, bytes], self.redis.hgetall(f"{self.prefix}counts:languages"))
        return {int(k): int(v) for k, v in raw.items()}

    def histograms(self) -> dict[str, dict[str, float]]:
        """Each latency histogram's raw (non-cumulative) bucket counts, 'count' and 'sum'."""
        pipe = self.redis.pipeline(transaction=False)
        for name in HISTOGRAMS:
            pipe.hgetall(f"{self.prefix}hist:{name}")
        return {
            name: {k.decode(): float(v) for k, v in raw.items()}
            for name, raw in zip(HISTOGRAMS, pipe.execute(), strict=True)
        }

    def set_disabled_languages(self, language_ids: list[int]) -> None:
        """For the worker: the languages whose self-test failed (replaces the set)."""
        key = f"{self.prefix}languages:disabled"
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key)
        if language_ids:
            pipe.sadd(key, *language_ids)
        pipe.execute()

    def disabled_languages(self) -> set[int]:
        raw = cast(set[bytes], self.redis.smembers(f"{self.prefix}languages:disabled"))
        return {int(x) for x in raw}


def _record(token: str, raw: dict[bytes, bytes]) -> Record | None:
    if not raw:
        return None
    d = {k.decode(): v.decode() for k, v in raw.items()}
    result = d.get("result")
    try:
        submission, invalid = decode(d.get("submission", "")), ""
    except InvalidSubmission as e:
        submission, invalid = Submission(), str(e)
    return Record(
        token=token,
        submission=submission,
        invalid=invalid,
        status_id=int(d["status_id"]),
        result=json.loads(result) if result else None,
        message=d.get("message", ""),
        created_at=float(d["created_at"]),
        started_at=float(d["started_at"]) if d.get("started_at") else None,
        finished_at=float(d["finished_at"]) if d.get("finished_at") else None,
        attempts=int(d.get("attempts", 0)),
        callback_url=d.get("callback_url") or None,
        meta=json.loads(d.get("meta") or "{}"),
        owner=d.get("owner", ""),
    )
