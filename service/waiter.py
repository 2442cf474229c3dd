"""One pub/sub listener per API process for wait=true: each waiting request sleeps on an Event
that the listener sets when finish() publishes its token, instead of opening, subscribing
and closing a Redis connection of its own per request."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

import redis

from worker.jobs.store import Record

log = logging.getLogger("stockade.api")

_GLOB = re.compile(r"([*?\[\]\\])")
_BACKOFF_S = (0.1, 0.2, 0.5, 1.0, 2.0)


def channel_pattern(prefix: str) -> str:
    """The PSUBSCRIBE pattern of every done:{token} channel under `prefix`, with the
    prefix's own glob characters escaped."""
    return _GLOB.sub(r"\\\1", prefix) + "done:*"


class Waiter:
    """Started on the first wait (after gunicorn's fork, never before). While the listener is
    not subscribed (Redis restarting, say), wait() says so and the caller falls back to a
    subscription of its own; each time it subscribes again it wakes every waiter, which
    fetch the record afresh: a finish() published while it was away is never missed."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.url = redis_url
        self.channel_prefix = prefix + "done:"
        self.pattern = channel_pattern(prefix)
        self._lock = threading.Lock()
        self._waiting: dict[str, set[threading.Event]] = {}
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._listen, name="waiter", daemon=True)
                self._thread.start()

    def wait(
        self, token: str, fetch: Callable[[], Record | None], timeout_s: float
    ) -> tuple[bool, Record | None]:
        """(served, record): the final record, or None after timeout_s or for an unknown
        token. served is False when the listener was not subscribed within the timeout."""
        self._start()
        event = threading.Event()
        with self._lock:
            self._waiting.setdefault(token, set()).add(event)
        try:
            if not self._ready.wait(min(timeout_s, 1.0)):
                return False, None
            record = fetch()  # after the subscription: a finish() from now on wakes us
            deadline = time.monotonic() + timeout_s
            while record is not None and not record.final:
                left = deadline - time.monotonic()
                if left <= 0 or not event.wait(left):
                    return True, None
                event.clear()
                if not self._ready.is_set():
                    return False, None  # the listener lost Redis: no wake-up would come
                record = fetch()
            return True, record
        finally:
            with self._lock:
                events = self._waiting.get(token)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._waiting[token]

    def _wake(self, token: str | None) -> None:
        with self._lock:
            if token is None:
                events = [e for es in self._waiting.values() for e in es]
            else:
                events = list(self._waiting.get(token, ()))
        for e in events:
            e.set()

    def _listen(self) -> None:
        failures = 0
        while not self._stop.is_set():
            client: redis.Redis = redis.Redis.from_url(self.url)
            pubsub = client.pubsub()
            try:
                pubsub.psubscribe(self.pattern)
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=1.0)
                    if msg is None:
                        continue
                    if msg["type"] == "psubscribe":
                        self._ready.set()
                        failures = 0
                        self._wake(None)  # anything finished while we were away
                    elif msg["type"] == "pmessage":
                        name = msg["channel"].decode("utf-8", "replace")
                        self._wake(name.removeprefix(self.channel_prefix))
            except (redis.RedisError, OSError) as e:
                self._ready.clear()
                self._wake(None)
                delay = _BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)]
                failures += 1
                log.warning("wait listener: %s; again in %.1f s", e, delay)
                self._stop.wait(delay)
            finally:
                try:
                    pubsub.close()
                    client.close()
                except (redis.RedisError, OSError):
                    pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
