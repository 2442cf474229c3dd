"""With auth off, what a page elsewhere could make a browser send is refused: a body of a type
that needs no CORS preflight (text/plain, forms), a Host that is not this machine's (DNS
rebinding), an Origin that is not the server's own. Judge0 clients sending JSON, the
playground and the probes are served as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from service import create_app
from service.config import Config
from service.crosssite import hostname
from tests.unit.redis_server import redis_url
from tests.unit.service_app import HELLO

__all__ = ["redis_url"]

BODY = json.dumps(HELLO)
PLAYGROUND = Path(__file__).parents[2] / "service" / "static" / "playground" / "playground.js"


def make(redis_url: str, **overrides: object) -> FlaskClient:
    config = Config(redis_url=redis_url, redis_prefix="t:").replace(**overrides)
    return create_app(config).test_client()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
)
@pytest.mark.parametrize("path", ["/submissions", "/api/v1/submissions", "/api/v2/execute"])
def test_a_simple_request_body_is_refused(
    redis_url: str, content_type: str | None, path: str
) -> None:
    client = make(redis_url)
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = client.post(path, data=BODY, headers=headers)
    assert r.status_code == 415, r.get_data(as_text=True)
    assert "must be application/json while auth is off" in r.get_json()["Content-Type"][0]


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
def test_json_is_served(redis_url: str, content_type: str) -> None:
    client = make(redis_url)
    r = client.post("/submissions", data=BODY, headers={"Content-Type": content_type})
    assert r.status_code == 201
    assert client.post("/authenticate").status_code == 200  # no body, nothing to refuse


@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("localhost", True),
        ("127.0.0.1:2358", True),
        ("[::1]:2358", True),
        ("LOCALHOST:2358", True),
        ("attacker.example:2358", False),
        ("127.0.0.1.attacker.example", False),
        ("[::1", False),
        ("", False),
    ],
)
def test_only_local_host_names_are_served(redis_url: str, host: str, served: bool) -> None:
    client = make(redis_url)
    r = client.get("/languages", headers={"Host": host})
    assert (r.status_code == 200) is served, (host, r.status_code)
    if not served:
        assert r.status_code == 403 and "DNS rebinding" in r.get_json()["Host"][0]
        r = client.post("/submissions", json=HELLO, headers={"Host": host})
        assert r.status_code == 403


def test_the_operator_may_name_more_hosts(redis_url: str) -> None:
    client = make(redis_url, allowed_hosts=("Judge.Internal",))
    assert client.get("/languages", headers={"Host": "judge.internal:2358"}).status_code == 200
    assert client.get("/languages", headers={"Host": "other.internal"}).status_code == 403


def test_probes_answer_whatever_the_host(redis_url: str) -> None:
    # Kubernetes' httpGet probes send the pod's address as the Host.
    client = make(redis_url)
    for path in ("/api/v1/health", "/openapi.json", "/metrics"):
        assert client.get(path, headers={"Host": "10.1.2.3:2358"}).status_code == 200, path


def test_a_foreign_origin_is_refused(redis_url: str) -> None:
    client = make(redis_url)
    h = {"Host": "127.0.0.1:2358"}
    r = client.post("/submissions", json=HELLO, headers={**h, "Origin": "https://evil.example"})
    assert r.status_code == 403 and "Origin" in r.get_json()
    assert (
        client.post("/submissions", json=HELLO, headers={**h, "Origin": "null"}).status_code == 403
    )
    # The playground's own page posts from the server's own origin.
    own = {**h, "Origin": "http://127.0.0.1:2358"}
    assert client.post("/submissions", json=HELLO, headers=own).status_code == 201


def test_the_playground_is_served_and_sends_json(redis_url: str) -> None:
    client = make(redis_url)
    for path in ("/", "/playground/playground.js", "/playground/playground.css"):
        assert client.get(path, headers={"Host": "127.0.0.1:2358"}).status_code == 200, path
    assert "'Content-Type': 'application/json'" in PLAYGROUND.read_text()


def test_with_auth_on_clients_are_as_before(redis_url: str) -> None:
    # A page elsewhere has no token to send: a token-bearing client keeps its old freedoms.
    client = make(redis_url, auth_tokens=("s3cret",))
    h = {"X-Auth-Token": "s3cret", "Content-Type": "text/plain", "Host": "judge.example"}
    assert client.post("/submissions", data=BODY, headers=h).status_code == 201
    r = client.post("/submissions", data=BODY, headers={"Content-Type": "text/plain"})
    assert r.status_code == 401


def test_hostname() -> None:
    assert hostname("[::1]:80") == "::1" and hostname("Example.COM:1") == "example.com"
    assert hostname("[::1") is None and hostname("") is None
