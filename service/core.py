"""The app's shared pieces: config, store and languages; submit (store, then queue) and wait."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from sandbox.spec import strongest
from service import submissions
from service.config import Config
from service.errors import ApiError
from service.languages import LanguageInfo
from service.waiter import Waiter
from worker.jobs import heartbeat
from worker.jobs.model import Submission
from worker.jobs.queue import TASK, task_message
from worker.jobs.store import Record, Store

_DISABLED_CACHE_S = 5.0
_WORKERS_CACHE_S = 2.0


@dataclass
class Core:
    config: Config
    store: Store
    languages: dict[int, LanguageInfo]
    _disabled: tuple[float, set[int]] = field(default=(0.0, set()))
    _workers: tuple[float, list[heartbeat.Beat]] = field(default=(-1e9, []))
    waiter: Waiter | None = None

    @classmethod
    def build(cls, config: Config, languages: dict[int, LanguageInfo]) -> Core:
        store = Store(config.redis_url, config.redis_prefix, config.result_ttl_s)
        return cls(config, store, languages, waiter=Waiter(config.redis_url, config.redis_prefix))

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

    def check_queue(self, adding: int = 1) -> None:
        if self.store.queue_depth() + adding > self.config.max_queue_depth:
            raise ApiError.message(503, "queue is full")

    def submit(
        self, sub: Submission, *, callback_url: str | None = None, meta: dict[str, Any]
    ) -> str:
        """Stored and queued in one transaction (Celery's broker is the store's Redis): both
        happen or neither, and a Redis error reaches the client as a 503."""
        queue = self.config.queue
        return self.store.create(
            sub,
            callback_url=callback_url,
            meta=meta,
            enqueue=lambda token: (queue, task_message(TASK, [token], queue)),
        )

    def wait(self, token: str, timeout_s: float | None = None) -> Record | None:
        """The final record, or the record as it stands when the wait times out."""
        limit = self.config.wait_timeout_s if timeout_s is None else timeout_s
        if self.waiter is not None:
            served, record = self.waiter.wait(token, lambda: self.store.get(token), limit)
            if served:
                return record or self.store.get(token)
        # The shared listener is not subscribed (Redis restarting): a subscription of our own.
        return self.store.wait(token, limit) or self.store.get(token)


def core() -> Core:
    c: Core = current_app.extensions["stockade"]
    return c
