"""Callbacks to a receiver on 127.0.0.1: Judge0's body, signed, with the guard relaxed for
the test; and the guard, not relaxed, refusing loopback, metadata and private addresses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import queue
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.e2e.conftest import CALLBACK_SECRET, PYTHON, Stack, poll
from worker.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, CallbackSettings, deliver

Received = tuple[str, dict[str, str], bytes]


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, queue.Queue[Received]]]:
    got: queue.Queue[Received] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got.put((self.path, dict(self.headers.items()), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def drain(got: queue.Queue[Received]) -> None:
    while not got.empty():
        got.get_nowait()


def test_callback_is_put_with_judge0_body_and_signature(
    api: httpx.Client, receiver: tuple[str, queue.Queue[Received]]
) -> None:
    url, got = receiver
    drain(got)
    r = api.post(
        "/submissions",
        json={"source_code": 'print("hi")', "language_id": PYTHON, "callback_url": url + "/cb"},
    )
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    path, headers, body = got.get(timeout=30)
    assert path == "/cb"
    data = json.loads(body)
    assert data["token"] == token and data["status"]["id"] == 3
    assert base64.b64decode(data["stdout"]) == b"hi\n"
    ts = headers[TIMESTAMP_HEADER]
    want = hmac.new(CALLBACK_SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256)
    assert headers[SIGNATURE_HEADER] == "sha256=" + want.hexdigest()
    assert abs(int(ts) - time.time()) < 60


def test_api_refuses_internal_callback_urls_when_not_relaxed(stack: Stack) -> None:
    strict = stack.start_api("api-strict-callbacks", STOCKADE_CALLBACK_ALLOW_PRIVATE="0")
    with httpx.Client(base_url=strict, timeout=30) as client:
        for url in ("http://127.0.0.1:9/", "http://169.254.169.254/latest", "http://10.1.2.3/"):
            r = client.post(
                "/submissions",
                json={"source_code": "print(1)", "language_id": PYTHON, "callback_url": url},
            )
            assert r.status_code == 422 and "callback_url" in r.text, (url, r.text)


def test_worker_guard_refuses_after_resolution(
    receiver: tuple[str, queue.Queue[Received]],
) -> None:
    """The worker's own check (not relaxed), against a live receiver that would answer."""
    url, got = receiver
    drain(got)
    strict = CallbackSettings(max_tries=2, backoff_s=0.01)
    port = url.rsplit(":", 1)[1]
    for target in (url, f"http://localhost:{port}/", "http://169.254.169.254/", "http://10.0.0.1/"):
        ok, why = deliver(target, {"token": "x"}, strict, sleep=lambda _: None)
        assert not ok and "callback_url" in why, (target, why)
    time.sleep(0.2)
    assert got.empty()


def test_worker_refuses_loopback_callback_end_to_end(
    stack: Stack, receiver: tuple[str, queue.Queue[Received]]
) -> None:
    """An API that lets the URL through, a worker that does not: the job is judged, the
    receiver on 127.0.0.1 hears nothing, and the worker says why."""
    url, got = receiver
    drain(got)
    env = {"STOCKADE_QUEUE": "strict", "STOCKADE_REDIS_PREFIX": "strict:"}
    worker = stack.start_worker("worker-strict", STOCKADE_CALLBACK_ALLOW_PRIVATE="0", **env)
    api = stack.start_api("api-strict-worker", STOCKADE_CALLBACK_ALLOW_PRIVATE="1", **env)
    with httpx.Client(base_url=api, timeout=30) as client:
        r = client.post(
            "/submissions",
            json={"source_code": "print(1)", "language_id": PYTHON, "callback_url": url},
        )
        assert r.status_code == 201, r.text
        assert poll(client, r.json()["token"])["status"]["id"] == 3  # type: ignore[index]
    time.sleep(0.5)
    assert got.empty()
    log = (stack.tmp / "worker-strict.log").read_text()
    assert "loopback address" in log
    assert worker.poll() is None
