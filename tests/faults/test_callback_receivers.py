"""Fault 4: callback receivers that hang (accept, never answer) or answer 500. The verdict is
stored before the callback, so the submission is final at once; the worker gives up on the
receiver after its tries and deadline and is then free for the next jobs."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import PYTHON
from tests.faults.conftest import SLEEPER, FaultStack, Ledger, assert_settled

TIMEOUT_S = 1.0
DEADLINE_S = 2.5
TRIES = 3
# deliver() starts no try once the deadline is near, but a started try may use its timeout.
BOUND_S = DEADLINE_S + TIMEOUT_S


class Hanging:
    """Accepts connections and never answers; holds them until closed."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(5)


class Failing(http.server.ThreadingHTTPServer):
    puts = 0


class Answer500(http.server.BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        assert isinstance(self.server, Failing)
        self.server.puts += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def receivers() -> Iterator[tuple[Hanging, Failing]]:
    hang = Hanging()
    fail = Failing(("127.0.0.1", 0), Answer500)
    t = threading.Thread(target=fail.serve_forever, daemon=True)
    t.start()
    try:
        yield hang, fail
    finally:
        fail.shutdown()
        fail.server_close()
        t.join(5)
        hang.close()


def test_hanging_and_failing_callbacks(
    bare_stack: FaultStack, receivers: tuple[Hanging, Failing]
) -> None:
    hang, fail = receivers
    bare_stack.worker = bare_stack.start_worker(
        STOCKADE_CALLBACK_TIMEOUT_S=str(TIMEOUT_S),
        STOCKADE_CALLBACK_DEADLINE_S=str(DEADLINE_S),
        STOCKADE_CALLBACK_MAX_TRIES=str(TRIES),
    )
    bare_stack.start_api_on()
    with httpx.Client(base_url=bare_stack.url, timeout=10) as client:
        ledger = Ledger(client)
        start = time.monotonic()
        for port in (hang.port, fail.server_address[1]):
            url = f"http://127.0.0.1:{port}/hook"
            ledger.submit({"source_code": SLEEPER, "language_id": PYTHON, "callback_url": url})
        # Both worker slots are now (about to be) busy calling back; four ordinary jobs wait.
        for _ in range(4):
            ledger.submit()
        assert len(ledger.accepted) == 6, ledger.refused
        outcome = ledger.settle(timeout_s=30)
        took = time.monotonic() - start
    print(
        f"\nall 6 final {took:.2f}s after the first POST; hanging receiver got "
        f"{len(hang.conns)} connections, the 500 receiver {fail.puts} PUTs"
    )
    assert_settled(outcome)
    assert outcome["statuses"] == {3: 6}, outcome
    # Each slot is held by a callback for at most BOUND_S, then the 4 jobs take ~0.5 s a pair.
    assert took < BOUND_S + 6, took
    deadline = time.monotonic() + BOUND_S + 2
    while (len(hang.conns) < TRIES or fail.puts < TRIES) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fail.puts == TRIES
    assert 1 <= len(hang.conns) <= TRIES
    assert bare_stack.worker.poll() is None
