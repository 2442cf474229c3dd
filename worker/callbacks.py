"""Callbacks: PUT Judge0's body to the submitter's URL, signed, retried, and never to an
internal address (the SSRF of Judge0's CVE-2024-29021).

The host is resolved once; every address it resolves to must be public, and the connection
goes to that very address (no second lookup a rebinding DNS server could answer differently).
Refused unless STOCKADE_CALLBACK_ALLOW_PRIVATE=true: loopback, private (RFC 1918, ULA),
link-local, CGNAT (100.64/10), reserved and other non-global ranges. Always refused, even
relaxed: unspecified (0.0.0.0, ::), multicast and the cloud metadata address.

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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sandbox.settings import setting
from worker.jobs.settings import CALLBACK_ALLOW_PRIVATE, CALLBACK_SECRET

log = logging.getLogger("stockade.callbacks")

SIGNATURE_HEADER = "X-Stockade-Signature"
TIMESTAMP_HEADER = "X-Stockade-Timestamp"
METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))
CGNAT = ipaddress.ip_network("100.64.0.0/10")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(ValueError):
    """The URL may not be called: bad scheme, unresolvable, or an internal address."""


MAX_TRIES = setting(
    "STOCKADE_CALLBACK_MAX_TRIES", 3, "tries of each callback (Judge0's 3)", minimum=1
)
TIMEOUT_S = setting(
    "STOCKADE_CALLBACK_TIMEOUT_S", 5.0, "seconds of each callback try (Judge0's 5)", minimum=0
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


@dataclass(frozen=True)
class CallbackSettings:
    """Judge0's callbacks_max_tries (3) and callbacks_timeout (5 s), plus a total deadline."""

    max_tries: int = 3
    timeout_s: float = 5.0
    deadline_s: float = 20.0
    backoff_s: float = 0.5  # doubled after each failed try
    allow_private: bool = False
    secret: bytes = b""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CallbackSettings:
        return cls(
            max_tries=MAX_TRIES.as_int(env),
            timeout_s=TIMEOUT_S.as_float(env),
            deadline_s=DEADLINE_S.as_float(env),
            backoff_s=BACKOFF_S.as_float(env),
            allow_private=CALLBACK_ALLOW_PRIVATE.as_bool(env),
            secret=CALLBACK_SECRET.as_str(env).encode(),
        )


# --- The guard (pure) ------------------------------------------------------------------------


def refusal(ip: Address, allow_private: bool) -> str | None:
    """Why a connection to `ip` is refused, or None when it is allowed."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_multicast:
        return "multicast address"
    if ip in METADATA:
        return "cloud metadata address"
    if allow_private:
        return None
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "carrier-grade NAT address"
    if ip.is_private:
        return "private address"
    if not ip.is_global:
        return "reserved address"
    return None


def resolve(host: str, port: int, allow_private: bool) -> Address:
    """The one address to connect to: every address of `host` must pass the guard."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise CallbackRefused(f"callback_url: cannot resolve {host!r}: {e}") from None
    addrs = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addrs:
        raise CallbackRefused(f"callback_url: {host!r} has no address")
    for ip in addrs:
        why = refusal(ip, allow_private)
        if why is not None:
            raise CallbackRefused(f"callback_url: {host!r} resolves to {ip}, a {why}")
    return addrs[0]


def check_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path?query) of an http(s) URL without credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise CallbackRefused("callback_url: must be an http or https URL")
    if not parts.hostname or parts.username or parts.password:
        raise CallbackRefused("callback_url: needs a host and no credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CallbackRefused("callback_url: bad port") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path


# --- Connections pinned to the checked address -----------------------------------------------


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, ip: Address, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._ip = str(ip)

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, ip: Address, port: int, timeout: float) -> None:
        self._context_ = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._context_)
        self._ip = str(ip)

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        # The certificate is checked against the name, the socket is bound to the address.
        self.sock = self._context_.wrap_socket(sock, server_hostname=self.host)


def put_once(url: str, body: bytes, headers: dict[str, str], s: CallbackSettings) -> int:
    """One PUT; returns the HTTP status. Raises CallbackRefused or OSError."""
    scheme, host, port, path = check_url(url)
    ip = resolve(host, port, s.allow_private)
    cls = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
    conn = cls(host, ip, port, s.timeout_s)
    try:
        conn.request("PUT", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read(65536)
        return resp.status
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
    """PUT with retries (bounded in tries and total time): (delivered, what happened)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    start = time.monotonic()
    delay = s.backoff_s
    why = "not tried"
    for attempt in range(1, s.max_tries + 1):
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": "stockade-callback"}
        if s.secret:
            headers[TIMESTAMP_HEADER] = ts
            headers[SIGNATURE_HEADER] = sign(s.secret, ts, body)
        try:
            status = put_once(url, body, headers, s)
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
    from worker.jobs.model import JUDGE0_STATUSES

    r = result or {}
    cases = r.get("cases") or []
    deciding = next((c for c in cases if c.get("verdict") != "AC"), cases[-1] if cases else {})

    def b64(text: str | None) -> str | None:
        return base64.b64encode(text.encode()).decode() if text else None

    time_s = r.get("time")
    memory = r.get("memory")
    return {
        "token": token,
        "stdout": b64(deciding.get("stdout")),
        "stderr": b64(deciding.get("stderr")),
        "compile_output": b64(r.get("compile_output")),
        "message": b64(message or r.get("message")),
        "exit_code": deciding.get("exit_code"),
        "exit_signal": deciding.get("signal"),
        "time": f"{time_s:.3f}" if isinstance(time_s, int | float) else None,
        "memory": memory // 1024 if isinstance(memory, int) else None,
        "status": {"id": status_id, "description": JUDGE0_STATUSES.get(status_id, "Unknown")},
    }
