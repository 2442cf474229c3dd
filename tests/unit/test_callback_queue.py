"""The callbacks' own queue: what the judging task pushes, what the consumer accepts, and a
delivery from the stored record (a real Redis, a receiver on 127.0.0.1)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.unit.redis_server import redis_url
from worker.callback_queue import deliver_token, enqueue, token_of
from worker.callbacks import CallbackSettings
from worker.jobs.model import Submission
from worker.jobs.settings import TASK_CALLBACK, TASK_JUDGE
from worker.jobs.store import Store

__all__ = ["redis_url"]


def decoded(raw: bytes) -> tuple[Any, dict[str, Any]]:
    """(body, headers) as kombu hands them to a consumer."""
    envelope = json.loads(raw)
    return json.loads(base64.b64decode(envelope["body"])), envelope["headers"]


def test_enqueue_pushes_a_callback_task_on_the_callbacks_queue(redis_url: str) -> None:
    store = Store(redis_url, "t:")
    enqueue(store.redis, "judges", "tok-1")
    assert store.redis.llen("judges") == 0
    (raw,) = store.redis.lrange("judges.callbacks", 0, -1)
    body, headers = decoded(raw)
    assert headers["task"] == TASK_CALLBACK and token_of(body, headers) == "tok-1"
    assert json.loads(raw)["properties"]["delivery_info"]["routing_key"] == "judges.callbacks"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ([["tok"], {}, {}], {"task": TASK_JUDGE}),
        ([["tok"], {}, {}], None),
        ([[1], {}, {}], {"task": TASK_CALLBACK}),
        ([["a", "b"], {}, {}], {"task": TASK_CALLBACK}),
        ({"args": ["tok"]}, {"task": TASK_CALLBACK}),
        ([], {"task": TASK_CALLBACK}),
    ],
)
def test_messages_that_are_not_ours_are_refused(body: Any, headers: Any) -> None:
    assert token_of(body, headers) is None


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    got: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            got.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cb", got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_delivery_reads_the_stored_verdict(
    redis_url: str, receiver: tuple[str, list[bytes]]
) -> None:
    url, got = receiver
    store = Store(redis_url, "t:")
    s = CallbackSettings(allow_private=True, timeout_s=2.0)
    token = store.create(Submission("print(1)", 71), callback_url=url)
    ok, why = deliver_token(token, store, s)
    assert not ok and "status 1" in why and not got  # not final: nothing is sent
    store.start(token)
    store.finish(token, 4, {"cases": [{"verdict": "WA", "stdout": "2\n"}]}, "1: WA")
    ok, why = deliver_token(token, store, s)
    assert ok and "HTTP 204" in why, why
    body = json.loads(got[0])
    assert body["token"] == token and body["status"]["id"] == 4
    assert base64.b64decode(body["stdout"]) == b"2\n"
    store.delete(token)
    ok, why = deliver_token(token, store, s)
    assert not ok and "no such submission" in why
