"""Callbacks: the SSRF guard's address rules (IPv6 forms of IPv4 included), URL checks,
signatures, retries, Judge0's body."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import ipaddress
import time
from collections.abc import Callable, Iterator

import pytest

from tests.unit.slow_receiver import SlowReceiver
from worker import callbacks
from worker.callbacks import CallbackSettings, resolve
from worker.jobs.callback_guard import (
    CallbackRefused,
    Target,
    check_literal,
    host_refusal,
    parse_url,
    refusal,
)


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fd00:ec2::254",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.1.1.1",
        "240.0.0.1",
    ],
)
def test_internal_addresses_are_refused(addr: str) -> None:
    assert refusal(ipaddress.ip_address(addr), allow_private=False) is not None


@pytest.mark.parametrize("addr", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(addr: str) -> None:
    assert refusal(ipaddress.ip_address(addr), allow_private=False) is None


def test_relaxed_guard_allows_private_but_never_metadata_or_unspecified() -> None:
    ip = ipaddress.ip_address
    assert refusal(ip("127.0.0.1"), allow_private=True) is None
    assert refusal(ip("10.1.2.3"), allow_private=True) is None
    assert refusal(ip("169.254.169.254"), allow_private=True) == "the cloud metadata address"
    assert refusal(ip("0.0.0.0"), allow_private=True) == "an unspecified address"


def test_resolution_is_checked_after_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    # A public-looking name that resolves to the metadata address is refused.
    def fake(host: str, port: int, type: int = 0) -> list[tuple[object, ...]]:
        return [(2, 1, 6, "", ("93.184.216.34", port)), (2, 1, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(callbacks.socket, "getaddrinfo", fake)
    with pytest.raises(CallbackRefused, match=r"169\.254\.169\.254"):
        resolve("rebind.example", 80, allow_private=False)


def test_localhost_name_is_refused() -> None:
    with pytest.raises(CallbackRefused, match="loopback"):
        resolve("localhost", 80, allow_private=False)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "http://user:pw@example.com/", "http:///x"]
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(CallbackRefused):
        parse_url(url)


def test_parse_url_parts() -> None:
    assert parse_url("https://example.com/cb?x=1") == Target("https", "example.com", 443, "/cb?x=1")
    assert parse_url("http://example.com:8080") == Target("http", "example.com", 8080, "/")


def test_signature_is_hmac_of_timestamp_and_body() -> None:
    want = hmac.new(b"k", b"17.{}", hashlib.sha256).hexdigest()
    assert callbacks.sign(b"k", "17", b"{}") == "sha256=" + want


def test_deliver_retries_with_backoff_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, str]] = []

    def failing(
        url: str, body: bytes, headers: dict[str, str], s: CallbackSettings, within_s: float
    ) -> int:
        calls.append(headers)
        return 503

    slept: list[float] = []
    monkeypatch.setattr(callbacks, "put_once", failing)
    s = CallbackSettings(max_tries=3, backoff_s=0.5, secret=b"s")
    ok, why = callbacks.deliver("http://x/", {"a": 1}, s, sleep=slept.append)
    assert not ok and "HTTP 503" in why
    assert len(calls) == 3 and slept == [0.5, 1.0]
    assert calls[0][callbacks.SIGNATURE_HEADER].startswith("sha256=")


def test_deliver_stops_on_refusal_and_on_4xx(monkeypatch: pytest.MonkeyPatch) -> None:
    s = CallbackSettings(max_tries=5)
    ok, why = callbacks.deliver("http://127.0.0.1:9/", {}, s, sleep=lambda _: None)
    assert not ok and "loopback" in why
    monkeypatch.setattr(callbacks, "put_once", lambda *a: 404)
    ok, why = callbacks.deliver("http://x/", {}, s, sleep=lambda _: pytest.fail("retried"))
    assert not ok and "404" in why


def test_judge0_body() -> None:
    result = {
        "time": 0.0123,
        "memory": 4096 * 1024,
        "compile_output": "",
        "message": "",
        "cases": [{"verdict": "AC", "stdout": "hi\n", "stderr": "", "exit_code": 0}],
    }
    body = callbacks.judge0_body("t", 3, result, "")
    assert body["token"] == "t" and body["time"] == "0.012" and body["memory"] == 4096
    assert base64.b64decode(body["stdout"]) == b"hi\n"
    assert body["stderr"] is None and body["status"] == {"id": 3, "description": "Accepted"}


def test_judge0_body_sends_output_that_is_not_utf8_byte_for_byte() -> None:
    raw = b"\xff\xfe\x00"
    case = {"verdict": "AC", "stdout": raw.decode("utf-8", "replace"), "stderr": ""}
    case["stdout_b64"] = base64.b64encode(raw).decode()
    body = callbacks.judge0_body("t", 3, {"cases": [case]}, "")
    assert base64.b64decode(body["stdout"]) == raw


# --- IPv6 forms that carry an IPv4 address ------------------------------------------------------

# (form, IPv6 address carrying an internal IPv4 one, what the refusal must name)
CARRIED = [
    ("NAT64", "64:ff9b::a00:1", "10.0.0.1"),
    ("NAT64", "64:ff9b::7f00:1", "127.0.0.1"),
    ("NAT64", "64:ff9b::a9fe:a9fe", "169.254.169.254"),
    ("NAT64", "64:ff9b:1::a00:1", "local-use NAT64"),
    ("NAT64", "64:ff9b:1:abcd::5db8:d822", "local-use NAT64"),  # the whole /48 is local
    ("IPv4-mapped", "::ffff:127.0.0.1", "127.0.0.1"),
    ("IPv4-mapped", "::ffff:169.254.169.254", "169.254.169.254"),
    ("IPv4-translated", "::ffff:0:7f00:1", "127.0.0.1"),
    ("IPv4-translated", "::ffff:0:c0a8:101", "192.168.1.1"),
    ("6to4", "2002:a00:1::1", "10.0.0.1"),
    ("6to4", "2002:a9fe:a9fe::", "169.254.169.254"),
    ("IPv4-compatible", "::a00:1", "10.0.0.1"),
    ("IPv4-compatible", "::7f00:1", "127.0.0.1"),
    ("IPv4-compatible", "::a9fe:a9fe", "169.254.169.254"),
]


@pytest.mark.parametrize(("form", "addr", "named"), CARRIED)
def test_ipv6_forms_of_internal_ipv4_are_refused(form: str, addr: str, named: str) -> None:
    why = refusal(ipaddress.ip_address(addr), allow_private=False)
    assert why is not None and named in why, (addr, why)
    assert form in why or "local-use" in why, (addr, why)


@pytest.mark.parametrize(
    "addr", ["64:ff9b::a9fe:a9fe", "::ffff:0:a9fe:a9fe", "2002:a9fe:a9fe::1", "::a9fe:a9fe"]
)
def test_ipv6_forms_of_the_metadata_address_are_refused_even_relaxed(addr: str) -> None:
    why = refusal(ipaddress.ip_address(addr), allow_private=True)
    assert why is not None and "169.254.169.254" in why and "metadata" in why, why


def test_nat64_of_a_public_address_passes() -> None:
    """A DNS64 resolver on an IPv6-only host answers 64:ff9b::<public IPv4>: a public host."""
    assert refusal(ipaddress.ip_address("64:ff9b::5db8:d822"), allow_private=False) is None
    assert refusal(ipaddress.ip_address("::ffff:93.184.216.34"), allow_private=False) is None


@pytest.mark.parametrize(("form", "addr", "named"), CARRIED)
def test_the_api_refuses_the_same_literals(form: str, addr: str, named: str) -> None:
    """The API's check is the same guard, on the URL's address literal."""
    with pytest.raises(CallbackRefused, match="callback_url: ") as e:
        check_literal(f"http://[{addr}]:8080/hook", allow_private=False)
    assert named in e.value.rule


@pytest.mark.parametrize(
    "host", ["127.1", "0x7f000001", "2130706433", "017700000001", "localhost", "a.localhost"]
)
def test_shorthand_ipv4_and_localhost_names_are_refused_before_dns(host: str) -> None:
    assert host_refusal(host, allow_private=False) is not None
    assert host_refusal("example.com", allow_private=False) is None


def test_resolution_to_an_ipv6_form_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name whose AAAA is the NAT64 form of an internal address is refused after DNS."""

    def fake(host: str, port: int, type: int = 0) -> list[tuple[object, ...]]:
        return [(10, 1, 6, "", ("64:ff9b::a00:5", port, 0, 0))]

    monkeypatch.setattr(callbacks.socket, "getaddrinfo", fake)
    with pytest.raises(CallbackRefused, match=r"NAT64 form of 10\.0\.0\.5"):
        resolve("aaaa.example", 80, allow_private=False)


# --- Each try bounded in wall time, however slowly the receiver answers -----------------------


@pytest.fixture
def slow() -> Iterator[SlowReceiver]:
    receiver = SlowReceiver(every_s=0.25, bound_s=8.0)
    try:
        yield receiver
    finally:
        receiver.close()


def test_a_dripping_receiver_cannot_stretch_a_try(slow: SlowReceiver) -> None:
    """One byte every 0.25 s restarts any socket timeout; the try still ends at 1 s."""
    s = CallbackSettings(timeout_s=1.0, allow_private=True)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="read the status line: the try's deadline of 1 s"):
        callbacks.put_once(slow.url, b"{}", {}, s)
    took = time.monotonic() - start
    assert 0.9 <= took < 1.5, took
    wait_for(lambda: slow.conns and slow.conns[0].hung_up is not None)
    conn = slow.conns[0]
    assert conn.request.startswith(b"PUT /hook ")
    assert conn.hung_up is not None and conn.hung_up - conn.accepted < 1.5


def test_every_try_ends_by_the_total_deadline(slow: SlowReceiver) -> None:
    s = CallbackSettings(timeout_s=1.0, deadline_s=1.6, max_tries=5, backoff_s=0.1)
    s = dataclasses.replace(s, allow_private=True)
    start = time.monotonic()
    ok, why = callbacks.deliver(slow.url, {"token": "t"}, s)
    took = time.monotonic() - start
    assert not ok and "TimeoutError" in why and "deadline" in why, why
    assert took < 1.6 + 0.4, took  # the second try got what was left of the 1.6 s, not 1 s
    assert len(slow.conns) == 2


def wait_for(done: Callable[[], object], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.02)
