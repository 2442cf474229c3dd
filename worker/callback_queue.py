"""Callbacks on a queue of their own: the judging task puts the submission's token on
`<queue>.callbacks` and returns; the worker's main process consumes that queue with a thread
pool of its own (STOCKADE_CALLBACK_CONCURRENCY), so a slow receiver holds a delivery thread
for at most the callback deadline, and never a judging slot."""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from celery import bootsteps
from kombu.common import ignore_errors
from kombu.entity import Exchange, Queue
from kombu.message import Message
from kombu.messaging import Consumer

from worker import runtime
from worker.callbacks import CallbackSettings, deliver, judge0_body
from worker.jobs.queue import task_message
from worker.jobs.settings import TASK_CALLBACK, callback_queue
from worker.jobs.store import Store

log = logging.getLogger("stockade.callbacks")


def enqueue(client: redis.Redis, judge_queue: str, token: str) -> None:
    """Queue the callback of a final submission (one LPUSH, Celery's message format)."""
    name = callback_queue(judge_queue)
    client.lpush(name, task_message(TASK_CALLBACK, [token], name))


def token_of(body: Any, headers: dict[str, Any] | None) -> str | None:
    """The token a callback message carries, or None when it is not one of ours."""
    if (headers or {}).get("task") != TASK_CALLBACK:
        return None
    if not isinstance(body, list) or not body or not isinstance(body[0], list):
        return None
    args = body[0]
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


def deliver_token(token: str, store: Store, settings: CallbackSettings) -> tuple[bool, str]:
    """Judge0's body of the stored result, PUT to the submission's callback_url."""
    rec = store.get(token)
    if rec is None:
        return False, "not called back: no such submission (deleted or expired)"
    if not rec.final or not rec.callback_url:
        return False, f"not called back: status {rec.status_id}, callback_url {rec.callback_url!r}"
    body = judge0_body(token, rec.status_id, rec.result, rec.message)
    return deliver(rec.callback_url, body, settings)


class CallbackConsumer(bootsteps.ConsumerStep):  # type: ignore[misc]
    """A step of the worker's consumer (Celery's bootsteps): its own channel on the broker,
    at most `concurrency` messages unacknowledged, each delivered in a thread of the main
    process. A message is acknowledged once its delivery is over, on the event loop's thread
    (kombu's channels are not thread-safe): a worker that dies mid-delivery leaves it to the
    broker, which gives it again after the visibility timeout."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._pool: ThreadPoolExecutor | None = None
        self._store: Store | None = None
        self._done: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._ack_lock = threading.Lock()
        self._hub: Any = None
        self._settings = CallbackSettings()
        self._queue = ""

    def start(self, c: Any) -> None:
        s = runtime.settings()
        self._settings = runtime.callback_settings()
        self._store = Store(s.redis_url, s.prefix, s.ttl_s)
        self._hub = getattr(c, "hub", None)
        self._pool = ThreadPoolExecutor(self._settings.concurrency, "callback")
        self._queue = callback_queue(s.queue)
        super().start(c)

    def get_consumers(self, channel: Any) -> list[Consumer]:
        name = self._queue
        return [
            Consumer(
                channel,
                queues=[Queue(name, Exchange(name), routing_key=name)],
                callbacks=[self.on_message],
                accept=["json"],
                prefetch_count=self._settings.concurrency,
            )
        ]

    def on_message(self, body: Any, message: Message) -> None:
        """On the event loop's thread: hand the delivery to the pool at once."""
        token = token_of(body, message.headers)
        if token is None or self._pool is None:
            log.error("callback queue: dropped a message that is not a %s task", TASK_CALLBACK)
            message.ack()
            return
        self._pool.submit(self._deliver, token, message)

    def _deliver(self, token: str, message: Message) -> None:
        try:
            assert self._store is not None
            ok, why = deliver_token(token, self._store, self._settings)
            log.log(logging.INFO if ok else logging.WARNING, "%s: callback %s", token, why)
        except Exception:  # a bug, or Redis away: logged, and not tried again (best effort)
            log.exception("%s: callback failed", token)
        self._done.put(message)
        if self._hub is not None:
            self._hub.call_soon(self._ack_done)
        else:  # no event loop (a solo or threads pool): kombu acks from the caller's thread
            self._ack_done()

    def _ack_done(self) -> None:
        with self._ack_lock:
            while True:
                try:
                    message = self._done.get_nowait()
                except queue.Empty:
                    return
                try:
                    message.ack()
                except Exception:  # the channel is gone: the broker gives the message again
                    log.warning("a delivered callback could not be acknowledged", exc_info=True)

    def _finish(self, c: Any) -> None:
        """No new message, the deliveries under way to their end (each bounded by the
        callback deadline), then their acknowledgements, before the channel closes."""
        for consumer in self.consumers or []:
            ignore_errors(c.connection, consumer.cancel)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._ack_done()
        if self._store is not None:
            self._store.redis.close()
            self._store = None

    def stop(self, c: Any) -> None:
        self._finish(c)
        super().stop(c)

    def shutdown(self, c: Any) -> None:
        self._finish(c)
        super().shutdown(c)
