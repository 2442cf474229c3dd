"""Callbacks to a receiver on 127.0.0.1: Judge0's body, signed, with the guard relaxed for
the test; and the guard, not relaxed, refusing loopback, metadata and private addresses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import queue
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.e2e.conftest import CALLBACK_SECRET, PYTHON, Stack, poll
from tests.unit.slow_receiver import SlowReceiver
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


def test_a_slow_loris_receiver_holds_no_judging_slot(stack: Stack) -> None:
    """Two receivers that drip one byte every 0.5 s (each byte well within any socket
    timeout) for up to 15 s: the judging tasks end at once, two more jobs are judged while
    the deliveries go on, and every try is cut at its 2 s deadline."""
    env = {
        "STOCKADE_QUEUE": "slowloris",
        "STOCKADE_REDIS_PREFIX": "slowloris:",
        "STOCKADE_SELF_TEST": "0",
        "STOCKADE_CALLBACK_TIMEOUT_S": "2",
        "STOCKADE_CALLBACK_DEADLINE_S": "5",
        "STOCKADE_CALLBACK_MAX_TRIES": "2",
        "STOCKADE_CALLBACK_BACKOFF_S": "0.1",
    }
    worker = stack.start_worker("worker-slowloris", **env)
    api = stack.start_api("api-slowloris", **env)
    slow = SlowReceiver(every_s=0.5, bound_s=15.0)
    try:
        with httpx.Client(base_url=api, timeout=30) as client:
            hooked = [
                client.post(
                    "/submissions",
                    json={"source_code": "print(1)", "language_id": PYTHON, "callback_url": url},
                ).json()["token"]
                for url in (slow.url, slow.url + "?2")
            ]
            for token in hooked:
                assert poll(client, token)["status"]["id"] == 3  # type: ignore[index]
            deadline = time.monotonic() + 10
            while len(slow.conns) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(slow.conns) >= 2, "the callbacks never reached the receiver"
            # Both receivers are dripping now; with concurrency 2 the slots must be free.
            start = time.monotonic()
            plain = [
                client.post("/submissions", json={"source_code": "print(2)", "language_id": PYTHON})
                for _ in range(2)
            ]
            for r in plain:
                assert poll(client, r.json()["token"])["status"]["id"] == 3  # type: ignore[index]
            took = time.monotonic() - start
            dripping = [c for c in slow.conns if c.hung_up is None]
        assert took < 3.0, f"plain jobs waited {took:.1f}s: a callback held a judging slot"
        assert dripping, "every delivery try was over before the plain jobs were judged"
        # Each try ends at its deadline: 2 tries of 2 s per callback (5 s in all), then done.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            len(slow.conns) < 4 or any(c.hung_up is None for c in slow.conns)
        ):
            time.sleep(0.1)
        held = [round(c.hung_up - c.accepted, 2) for c in slow.conns if c.hung_up is not None]
        print(f"\nplain jobs judged in {took:.2f}s; tries held for {held} s")
        assert len(slow.conns) == 4 and len(held) == 4, (len(slow.conns), held)
        assert all(1.8 <= h <= 2.6 for h in held), held
        log = (stack.tmp / "worker-slowloris.log").read_text()
        judged = [
            float(m) for m in re.findall(r"stockade\.judge\[[^]]+\] succeeded in ([\d.]+)s", log)
        ]
        assert len(judged) == 4 and max(judged) < 2.0, judged
        assert log.count(": callback try 2: TimeoutError: read the status line") == 2, log[-3000:]
        assert worker.poll() is None
    finally:
        slow.close()
