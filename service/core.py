"""The app's shared pieces: config, store, languages and the Celery producer; submit and wait."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import celery
from flask import current_app

from service.config import Config
from service.errors import ApiError
from service.languages import LanguageInfo
from worker.model import Submission
from worker.store import INTERNAL_ERROR, Record, Store

TASK = "stockade.judge"
_DISABLED_CACHE_S = 5.0


def broker_url(redis_url: str) -> str:
    """kombu spells a unix socket redis+socket:///path where redis-py says unix:///path."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


@dataclass
class Core:
    config: Config
    store: Store
    languages: dict[int, LanguageInfo]
    producer: Any  # celery.Celery: sends the judge task by name, never imports it
    _disabled: tuple[float, set[int]] = field(default=(0.0, set()))

    @classmethod
    def build(cls, config: Config, languages: dict[int, LanguageInfo]) -> Core:
        producer = celery.Celery("stockade", broker=broker_url(config.redis_url))
        producer.conf.update(
            task_serializer="json",
            broker_connection_retry_on_startup=True,
            task_publish_retry_policy={"max_retries": 3, "interval_start": 0.1},
        )
        store = Store(config.redis_url, config.redis_prefix, config.result_ttl_s)
        return cls(config, store, languages, producer)

    def disabled(self) -> set[int]:
        """Languages the workers switched off, cached for a few seconds."""
        at, ids = self._disabled
        if time.monotonic() - at > _DISABLED_CACHE_S:
            ids = self.store.disabled_languages()
            self._disabled = (time.monotonic(), ids)
        return ids

    def check_queue(self, adding: int = 1) -> None:
        if self.store.queue_depth() + adding > self.config.max_queue_depth:
            raise ApiError.message(503, "queue is full")

    def submit(
        self, sub: Submission, *, callback_url: str | None = None, meta: dict[str, Any]
    ) -> str:
        """Stored first, then queued: a failed send ends the record as Internal Error."""
        token = self.store.create(sub, callback_url=callback_url, meta=meta)
        try:
            self.producer.send_task(TASK, args=[token], queue=self.config.queue)
        except Exception as e:  # the broker is down: say so, never leave it In Queue
            self.store.finish(token, INTERNAL_ERROR, None, f"could not queue: {e}")
            raise ApiError.message(503, "queue is unavailable") from e
        return token

    def wait(self, token: str, timeout_s: float | None = None) -> Record | None:
        """The final record, or the record as it stands when the wait times out."""
        limit = self.config.wait_timeout_s if timeout_s is None else timeout_s
        return self.store.wait(token, limit) or self.store.get(token)


def core() -> Core:
    c: Core = current_app.extensions["stockade"]
    return c
