"""Callbacks: the SSRF guard's address rules, URL checks, signatures, retries, Judge0's body."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress

import pytest

from worker import callbacks
from worker.callbacks import CallbackRefused, CallbackSettings, check_url, refusal, resolve


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
    assert refusal(ip("169.254.169.254"), allow_private=True) == "cloud metadata address"
    assert refusal(ip("0.0.0.0"), allow_private=True) == "unspecified address"


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
        check_url(url)


def test_check_url_parts() -> None:
    assert check_url("https://example.com/cb?x=1") == ("https", "example.com", 443, "/cb?x=1")
    assert check_url("http://example.com:8080") == ("http", "example.com", 8080, "/")


def test_signature_is_hmac_of_timestamp_and_body() -> None:
    want = hmac.new(b"k", b"17.{}", hashlib.sha256).hexdigest()
    assert callbacks.sign(b"k", "17", b"{}") == "sha256=" + want


def test_deliver_retries_with_backoff_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, str]] = []

    def failing(url: str, body: bytes, headers: dict[str, str], s: CallbackSettings) -> int:
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
