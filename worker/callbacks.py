"""Callbacks: PUT Judge0's body to the submitter's URL, signed, retried, bounded in wall time,
and never to an internal address (worker.jobs.callback_guard, the SSRF of Judge0's
CVE-2024-29021).

The host is resolved once; every address it resolves to must pass the guard, and the
connection goes to that very address (no second lookup a rebinding DNS server could answer
differently). Each try has a wall-clock deadline over all of it (resolve, connect, TLS, send,
read the status line): a socket timeout alone restarts with every byte, so a receiver that
drips one byte every few seconds could hold a try for as long as it liked.

With STOCKADE_CALLBACK_SECRET set, each PUT carries
    X-Stockade-Timestamp: <unix seconds>
    X-Stockade-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
so a receiver can check both the body and its freshness.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.settings import setting
from worker.jobs.callback_guard import Address, CallbackRefused, parse_url, refusal
from worker.jobs.model import JUDGE0_STATUSES
from worker.jobs.settings import CALLBACK_ALLOW_PRIVATE, CALLBACK_SECRET

log = logging.getLogger("stockade.callbacks")

SIGNATURE_HEADER = "X-Stockade-Signature"
TIMESTAMP_HEADER = "X-Stockade-Timestamp"

MAX_TRIES = setting(
    "STOCKADE_CALLBACK_MAX_TRIES", 3, "tries of each callback (Judge0's 3)", minimum=1
)
TIMEOUT_S = setting(
    "STOCKADE_CALLBACK_TIMEOUT_S",
    5.0,
    "wall-clock seconds of each callback try, however slowly the receiver answers (Judge0's 5)",
    minimum=0,
)
DEADLINE_S = setting(
    "STOCKADE_CALLBACK_DEADLINE_S", 20.0, "seconds for all of a callback's tries", minimum=0
)
BACKOFF_S = setting(
    "STOCKADE_CALLBACK_BACKOFF_S",
    0.5,
    "seconds before a callback's second try, doubled after each",
    minimum=0,
)
CONCURRENCY = setting(
    "STOCKADE_CALLBACK_CONCURRENCY",
    8,
    "callbacks a worker delivers at once, in threads of its main process (no judging slot)",
    minimum=1,
)


@dataclass(frozen=True)
class CallbackSettings:
    """Judge0's callbacks_max_tries (3) and callbacks_timeout (5 s), plus a total deadline."""

    max_tries: int = 3
    timeout_s: float = 5.0
    deadline_s: float = 20.0
    backoff_s: float = 0.5  # doubled after each failed try
    allow_private: bool = False
    secret: bytes = b""
    concurrency: int = 8

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CallbackSettings:
        return cls(
            max_tries=MAX_TRIES.as_int(env),
            timeout_s=TIMEOUT_S.as_float(env),
            deadline_s=DEADLINE_S.as_float(env),
            backoff_s=BACKOFF_S.as_float(env),
            allow_private=CALLBACK_ALLOW_PRIVATE.as_bool(env),
            secret=CALLBACK_SECRET.as_str(env).encode(),
            concurrency=CONCURRENCY.as_int(env),
        )


# --- Resolution, checked by the guard ----------------------------------------------------------


def resolve(host: str, port: int, allow_private: bool, within_s: float | None = None) -> Address:
    """The one address to connect to: every address of `host` must pass the guard. The
    lookup runs in a thread of its own so that a slow resolver costs the try no more than
    `within_s` (getaddrinfo(3) takes no timeout)."""
    infos = _getaddrinfo(host, port, within_s)
    addrs = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addrs:
        raise CallbackRefused(f"{host!r} has no address")
    for ip in addrs:
        why = refusal(ip, allow_private)
        if why is not None:
            raise CallbackRefused(f"{host!r} resolves to {ip}, {why}")
    return addrs[0]


def _getaddrinfo(host: str, port: int, within_s: float | None) -> list[Any]:
    found: list[Any] = []
    failed: list[BaseException] = []

    def lookup() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as e:
            failed.append(e)

    if within_s is None:
        lookup()
    else:
        t = threading.Thread(target=lookup, name="callback-dns", daemon=True)
        t.start()
        t.join(within_s)
        if t.is_alive():  # left to finish on its own; its answer is not used
            raise TimeoutError(f"resolve: no answer for {host!r} within {within_s:g} s")
    if failed:
        raise CallbackRefused(f"cannot resolve {host!r}: {failed[0]}")
    return found


# --- Connections pinned to the checked address, cut at the try's deadline ----------------------


class _Watchdog:
    """Shuts a try's socket down at its deadline, wherever the try is blocked: recv and send
    on a socket shut down with SHUT_RDWR return at once (shutdown(2)), so no byte the
    receiver sends late can extend the try."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.fired:
                _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            if self._sock is not None:
                _shut(self._sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: the try is over anyway


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, ip: Address, port: int, timeout: float, dog: _Watchdog) -> None:
        super().__init__(host, port, timeout=timeout)
        self._ip = str(ip)
        self._dog = dog

    def _raw(self) -> socket.socket:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self._dog.watch(sock)
        return sock

    def connect(self) -> None:
        self.sock = self._raw()


class _PinnedHTTPS(_PinnedHTTP):
    default_port = http.client.HTTPS_PORT  # so the Host header leaves out :443

    def __init__(self, host: str, ip: Address, port: int, timeout: float, dog: _Watchdog) -> None:
        super().__init__(host, ip, port, timeout, dog)
        self._context = ssl.create_default_context()

    def connect(self) -> None:
        # The certificate is checked against the name, the socket is bound to the address;
        # the watchdog holds the raw socket, so a handshake dripped byte by byte is cut too.
        self.sock = self._context.wrap_socket(self._raw(), server_hostname=self.host)


def put_once(
    url: str,
    body: bytes,
    headers: dict[str, str],
    s: CallbackSettings,
    within_s: float | None = None,
) -> int:
    """One PUT, done within min(timeout_s, within_s) seconds of wall time: the HTTP status.
    Raises CallbackRefused, or OSError (TimeoutError naming the step at the deadline)."""
    budget = s.timeout_s if within_s is None else min(s.timeout_s, within_s)
    ends = time.monotonic() + budget
    target = parse_url(url)
    ip = resolve(target.host, target.port, s.allow_private, budget)
    left = max(0.001, ends - time.monotonic())
    step = "connect"
    with _Watchdog(left) as dog:
        cls = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
        conn = cls(target.host, ip, target.port, left, dog)
        try:
            conn.connect()
            step = "send"
            conn.request("PUT", target.path, body=body, headers=headers)
            step = "read the status line"
            # The status is all a callback needs: the body is never read.
            return conn.getresponse().status
        except (OSError, http.client.HTTPException) as e:
            if dog.fired:
                raise TimeoutError(f"{step}: the try's deadline of {budget:g} s passed") from e
            raise
        finally:
            conn.close()


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def deliver(
    url: str,
    payload: dict[str, Any],
    s: CallbackSettings,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bool, str]:
    """PUT with retries, bounded in tries and in wall time: every try ends by the total
    deadline as well as by its own (delivered, what happened)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    start = time.monotonic()
    delay = s.backoff_s
    why = "not tried"
    for attempt in range(1, s.max_tries + 1):
        left = s.deadline_s - (time.monotonic() - start)
        if left <= 0:
            break
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": "stockade-callback"}
        if s.secret:
            headers[TIMESTAMP_HEADER] = ts
            headers[SIGNATURE_HEADER] = sign(s.secret, ts, body)
        try:
            status = put_once(url, body, headers, s, left)
        except CallbackRefused as e:
            return False, str(e)  # no retry can make an internal address public
        except (OSError, http.client.HTTPException) as e:
            why = f"try {attempt}: {type(e).__name__}: {e}"
        else:
            if 200 <= status < 300:
                return True, f"delivered on try {attempt} (HTTP {status})"
            why = f"try {attempt}: HTTP {status}"
            if 400 <= status < 500 and status not in (408, 429):
                return False, why
        if attempt == s.max_tries or time.monotonic() - start + delay > s.deadline_s:
            break
        sleep(delay)
        delay *= 2
    log.warning("callback to %s failed: %s", url, why)
    return False, why


# --- Judge0's body ---------------------------------------------------------------------------


def judge0_body(
    token: str, status_id: int, result: dict[str, Any] | None, message: str
) -> dict[str, Any]:
    """What Judge0 PUTs: token, time (s, string), memory (KB), base64 text fields, status."""
    r = result or {}
    cases = r.get("cases") or []
    deciding = next((c for c in cases if c.get("verdict") != "AC"), cases[-1] if cases else {})

    def b64(text: str | None) -> str | None:
        return base64.b64encode(text.encode()).decode() if text else None

    time_s = r.get("time")
    memory = r.get("memory")
    return {
        "token": token,
        # The exact bytes where the worker kept them (output that is not UTF-8).
        "stdout": deciding.get("stdout_b64") or b64(deciding.get("stdout")),
        "stderr": deciding.get("stderr_b64") or b64(deciding.get("stderr")),
        "compile_output": r.get("compile_output_b64") or b64(r.get("compile_output")),
        "message": b64(message or r.get("message")),
        "exit_code": deciding.get("exit_code"),
        "exit_signal": deciding.get("signal"),
        "time": f"{time_s:.3f}" if isinstance(time_s, int | float) else None,
        "memory": memory // 1024 if isinstance(memory, int) else None,
        "status": {"id": status_id, "description": JUDGE0_STATUSES.get(status_id, "Unknown")},
    }
