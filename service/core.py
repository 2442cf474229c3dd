"""The app's shared pieces: config, store and languages; submit (store, then queue) and wait."""

from __future__ import annotations

import dataclasses
import datetime
import time
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from sandbox.spec import strongest
from service import auth, submissions
from service.config import Config
from service.errors import ApiError
from service.languages import LanguageInfo
from service.waiter import Waiter
from worker.jobs import heartbeat
from worker.jobs.model import Submission
from worker.jobs.queue import TASK, task_message
from worker.jobs.store import NewSubmission, Record, Refused, Store

_DISABLED_CACHE_S = 5.0
_WORKERS_CACHE_S = 2.0
CREATED_KEPT_S = 32 * 86400  # the per-day counts of /statistics' 30 days, and today
BUDGET_RETRY_S = 5  # Retry-After of a client over its budget: a guess, jobs take seconds


@dataclass
class Core:
    config: Config
    store: Store
    languages: dict[int, LanguageInfo]
    _disabled: tuple[float, set[int]] = field(default=(0.0, set()))
    _workers: tuple[float, list[heartbeat.Beat]] = field(default=(-1e9, []))
    waiter: Waiter | None = None
    auth_digests: tuple[str, ...] = ()
    authz_digests: tuple[str, ...] = ()

    @classmethod
    def build(cls, config: Config, languages: dict[int, LanguageInfo]) -> Core:
        store = Store(config.redis_url, config.redis_prefix, config.result_ttl_s)
        return cls(
            config,
            store,
            languages,
            waiter=Waiter(config.redis_url, config.redis_prefix),
            auth_digests=auth.digests(config.auth_tokens),
            authz_digests=auth.digests(config.authz_tokens),
        )

    def disabled(self) -> set[int]:
        """Languages the workers switched off, cached for a few seconds."""
        at, ids = self._disabled
        if time.monotonic() - at > _DISABLED_CACHE_S:
            ids = self.store.disabled_languages()
            self._disabled = (time.monotonic(), ids)
        return ids

    def workers(self) -> list[heartbeat.Beat]:
        """The live workers (from their heartbeats), cached for a moment."""
        at, beats = self._workers
        if time.monotonic() - at > _WORKERS_CACHE_S:
            beats = heartbeat.read_live(self.store.redis, self.config.redis_prefix)
            self._workers = (time.monotonic(), beats)
        return beats

    def tiers(self) -> list[str]:
        """The tiers a submission may ask for: container always (it queues until a worker
        comes), the others while a live worker serves them."""
        return heartbeat.served_tiers(self.workers()) or ["container"]

    def parse(self, body: dict[str, Any]) -> Submission:
        """A submission body checked field by field, with its tier settled (see place)."""
        sub = submissions.parse(body, self.config, self.languages, self.disabled())
        return self.place(sub)

    def place(self, sub: Submission) -> Submission:
        """The tier it runs in: the strongest of the request's, its language's default and
        the operator's minimum. One no live worker serves is a 422, never a downgrade."""
        info = self.languages.get(sub.language_id)
        tier = strongest(sub.tier, info.tier if info else "", self.config.min_tier)
        if tier != "container":  # the container tier needs no look at the workers
            served = self.tiers()
            if tier not in served:
                rule = f"{tier} is not served by any live worker (served: {', '.join(served)})"
                raise ApiError.field(422, "tier", rule)
            if sub.enable_network:
                rule = f"only the container tier has a network; this submission runs in {tier}"
                raise ApiError.field(422, "enable_network", rule)
        return dataclasses.replace(sub, tier=tier)

    def batch_items(self, body: dict[str, Any]) -> list[Any]:
        """A batch body's `submissions`: a non-empty list within the operator's cap."""
        items = body.get("submissions")
        if not isinstance(items, list) or not items:
            raise ApiError.field(422, "submissions", "must be a non-empty list")
        if len(items) > self.config.max_batch_size:
            cap = self.config.max_batch_size
            raise ApiError.field(422, "submissions", f"at most {cap} in a batch, got {len(items)}")
        return items

    def submit(
        self, sub: Submission, *, callback_url: str | None = None, meta: dict[str, Any]
    ) -> str:
        return self.submit_many([NewSubmission(sub, callback_url, meta)])[0]

    def submit_many(self, items: list[NewSubmission]) -> list[str]:
        """Stored and queued in one script (Celery's broker is the store's Redis): all of
        them or none, within the queue cap (503, as Judge0) and the client's budget (429).
        A Redis error reaches the client as a 503."""
        config, client = self.config, auth.current()
        queue, cap = config.queue, config.client_queue_cap()
        try:
            tokens = self.store.create_many(
                items,
                enqueue=lambda token: (queue, task_message(TASK, [token], queue)),
                owner=client.owner,
                client=client.key,
                queue_cap=config.max_queue_depth,
                client_cap=cap,
            )
        except Refused as e:
            if e.budget == "queue":
                raise ApiError.message(503, "queue is full") from None
            rule = (
                f"this client has {e.held} submissions waiting or running and may have at most "
                f"{cap} (STOCKADE_MAX_QUEUED_PER_CLIENT, or STOCKADE_MAX_QUEUE_SHARE of "
                f"the queue's {config.max_queue_depth}); {len(items)} more would pass it"
            )
            err = ApiError.message(429, rule)
            err.headers["Retry-After"] = str(BUDGET_RETRY_S)
            raise err from None
        self._count_created(len(tokens))
        return tokens

    def _count_created(self, n: int) -> None:
        """Submissions made per UTC day, kept a month: Judge0's statistics count them from
        its database, which keeps every submission; the store keeps results a day."""
        key = f"{self.config.redis_prefix}stats:created:{_utc_day(time.time())}"
        pipe = self.store.redis.pipeline(transaction=False)
        pipe.incrby(key, n)
        pipe.expire(key, CREATED_KEPT_S)
        pipe.execute()

    def created_per_day(self, days: list[str]) -> list[int]:
        """Submissions made on each UTC day (YYYY-MM-DD) of `days`, 0 for one not counted."""
        keys = [f"{self.config.redis_prefix}stats:created:{d}" for d in days]
        return [int(v or 0) for v in self.store.redis.mget(keys)] if keys else []

    def check_deletable(self) -> None:
        """Judge0's ENABLE_SUBMISSION_DELETE, off by default: 400 naming the setting."""
        if not self.config.enable_submission_delete:
            raise ApiError.message(
                400, "delete not allowed: STOCKADE_ENABLE_SUBMISSION_DELETE is off on this server"
            )

    def read(self, token: str, *, graded: bool = False) -> Record | None:
        """The record, if this client may read it (see auth.Client.may_read)."""
        return self.read_many([token], graded=graded)[0]

    def read_many(self, tokens: list[str], *, graded: bool = False) -> list[Record | None]:
        """Graded submissions (of an assignment) only with `graded`, and only they: their
        results are shown through the assignment's visibility rules, never as a judge's."""
        client, owner_only = auth.current(), self.config.owner_only_reads
        return [
            r
            if r is not None
            and bool(r.submission.assignment) == graded
            and client.may_read(r, owner_only)
            else None
            for r in self.store.get_many(tokens)
        ]

    def wait(self, token: str, timeout_s: float | None = None) -> Record | None:
        """The final record, or the record as it stands when the wait times out."""
        limit = self.config.wait_timeout_s if timeout_s is None else timeout_s
        if self.waiter is not None:
            served, record = self.waiter.wait(token, lambda: self.store.get(token), limit)
            if served:
                return record or self.store.get(token)
        # The shared listener is not subscribed (Redis restarting): a subscription of our own.
        return self.store.wait(token, limit) or self.store.get(token)


def _utc_day(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).date().isoformat()


def core() -> Core:
    c: Core = current_app.extensions["stockade"]
    return c
