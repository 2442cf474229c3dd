"""A slow-loris callback receiver on 127.0.0.1: reads the request, then drips an HTTP answer
one byte at a time, each byte well within a socket timeout, until the caller hangs up or its
own bound passes (it always stops by itself)."""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field

ANSWER = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 200


@dataclass
class Connection:
    """One caller: when it connected, and when it hung up (None: it never did, the drip ran
    out first)."""

    accepted: float
    request: bytes = b""
    hung_up: float | None = None


@dataclass
class SlowReceiver:
    """Drips a byte every `every_s`, for at most `bound_s` per connection."""

    every_s: float = 0.25
    bound_s: float = 10.0
    conns: list[Connection] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            record = Connection(time.monotonic())
            self.conns.append(record)
            t = threading.Thread(target=self._drip, args=(conn, record), daemon=True)
            self._threads.append(t)
            t.start()

    def _drip(self, conn: socket.socket, record: Connection) -> None:
        with conn:
            conn.settimeout(1.0)
            try:
                while b"\r\n\r\n" not in record.request:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    record.request += chunk
            except OSError:
                pass
            ends = record.accepted + self.bound_s
            for byte in ANSWER:
                if self._stop.is_set() or time.monotonic() > ends:
                    return
                readable, _, _ = select.select([conn], [], [], self.every_s)
                try:
                    if readable and not conn.recv(65536):  # the caller hung up
                        record.hung_up = time.monotonic()
                        return
                    conn.sendall(bytes([byte]))
                except OSError:  # reset by the caller
                    record.hung_up = time.monotonic()
                    return

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        for t in self._threads:
            t.join(5)
