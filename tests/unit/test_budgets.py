"""Budgets that hold, at the API: runs per submission (422), a client's open submissions and
its share of the queue (429), rate limits keyed on a verified token or the client's address
(a trusted proxy's word only when configured), failed authentications limited too, tokens
compared in constant time, and the 429's headers. Flask's test client, a real redis-server."""

from __future__ import annotations

import hmac
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from service import create_app
from service.config import Config
from tests.unit.redis_server import redis_url
from tests.unit.service_app import HELLO, ok_result
from worker.jobs.store import Store

__all__ = ["redis_url"]

ALICE, BOB = "alice-token-1", "bob-token-2"
A, B = {"X-Auth-Token": ALICE}, {"X-Auth-Token": BOB}


def make(redis_url: str, **overrides: Any) -> tuple[FlaskClient, Store]:
    app = create_app(Config(redis_url=redis_url, redis_prefix="t:").replace(**overrides))
    return app.test_client(), app.extensions["stockade"].store


def test_runs_per_submission_are_capped(redis_url: str) -> None:
    client, _ = make(redis_url, max_runs=30)
    cases = [{"input": str(i)} for i in range(11)]
    r = client.post("/api/v1/submissions", json={**HELLO, "test_cases": cases, "number_of_runs": 3})
    assert r.status_code == 422
    assert r.get_json()["test_cases"] == [
        "11 case(s) x 3 run(s) = 33 boxes, more than STOCKADE_MAX_RUNS_PER_SUBMISSION=30"
    ]
    r = client.post("/submissions", json={**HELLO, "number_of_runs": 20})
    assert r.status_code == 201
    client, _ = make(redis_url, max_runs=10)
    r = client.post("/submissions", json={**HELLO, "number_of_runs": 20})
    assert (
        r.status_code == 422
        and "STOCKADE_MAX_RUNS_PER_SUBMISSION" in r.get_json()["number_of_runs"][0]
    )


def test_default_runs_cap_refuses_the_issues_amplification(redis_url: str) -> None:
    client, _ = make(redis_url)
    cases = [{"input": str(i)} for i in range(1000)]
    r = client.post("/api/v1/submissions", json={**HELLO, "test_cases": cases})
    assert r.status_code == 422 and "test_cases" in r.get_json()


def test_a_token_may_hold_only_its_own_budget_of_the_queue(redis_url: str) -> None:
    client, store = make(redis_url, auth_tokens=(ALICE, BOB), max_queued_per_client=2)
    tokens = [client.post("/submissions", json=HELLO, headers=A).get_json()["token"] for _ in "ab"]
    r = client.post("/submissions", json=HELLO, headers=A)
    assert r.status_code == 429 and r.headers["Retry-After"] == "5"
    assert "STOCKADE_MAX_QUEUED_PER_CLIENT" in r.get_json()["error"]
    assert "has 2 submissions waiting or running" in r.get_json()["error"]
    # A batch past the budget is refused whole, on both APIs.
    r = client.post("/submissions/batch", json={"submissions": [HELLO] * 3}, headers=B)
    assert r.status_code == 429
    r = client.post("/api/v1/submissions/batch", json={"submissions": [HELLO] * 3}, headers=B)
    assert r.status_code == 429 and store.queue_depth() == 2
    assert client.post("/submissions", json=HELLO, headers=B).status_code == 201
    # A finished one frees a place.
    store.start(tokens[0])
    store.finish(tokens[0], 3, ok_result())
    assert client.post("/submissions", json=HELLO, headers=A).status_code == 201
    assert client.post("/api/v2/execute", json={"language": "python",
                       "files": [{"content": "1"}]}, headers=A).status_code == 429  # fmt: skip


def test_a_client_may_fill_only_its_share_of_the_queue(redis_url: str) -> None:
    client, _ = make(redis_url, max_queue_depth=10, max_queue_share=0.3)
    codes = [client.post("/submissions", json=HELLO).status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    # Another address (auth off: the budget is the address's) still has its share.
    other = {"REMOTE_ADDR": "192.0.2.7"}
    assert client.post("/submissions", json=HELLO, environ_base=other).status_code == 201
    with pytest.raises(ValueError, match="STOCKADE_MAX_QUEUE_SHARE: must be at most 1"):
        Config.from_env({"STOCKADE_MAX_QUEUE_SHARE": "2"})


def test_the_global_queue_cap_is_still_503(redis_url: str) -> None:
    client, _ = make(redis_url, max_queue_depth=2, max_queue_share=1.0)
    codes = [client.post("/submissions", json=HELLO).status_code for _ in range(3)]
    assert codes == [201, 201, 503]


def test_an_unverified_header_never_buys_a_fresh_rate_limit(redis_url: str) -> None:
    # Auth off: X-Auth-Token is anyone's to write, and X-Forwarded-For too without a proxy.
    client, _ = make(redis_url, rate_limit_per_minute=3)
    codes = [
        client.get(
            "/statuses", headers={"X-Auth-Token": f"t{i}", "X-Forwarded-For": f"198.51.100.{i}"}
        ).status_code
        for i in range(4)
    ]
    assert codes == [200, 200, 200, 429]


def test_verified_tokens_have_a_limit_each(redis_url: str) -> None:
    client, _ = make(redis_url, auth_tokens=(ALICE, BOB), rate_limit_per_minute=2)
    assert [client.get("/statuses", headers=A).status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/statuses", headers=B).status_code == 200


def test_behind_a_trusted_proxy_the_forwarded_address_counts(redis_url: str) -> None:
    client, _ = make(redis_url, rate_limit_per_minute=2, trusted_proxies=1)

    def get(forwarded: str) -> int:
        # The proxy appends the address it saw; whatever the client wrote stays to the left.
        h = {"X-Forwarded-For": f"203.0.113.99, {forwarded}"}
        return client.get("/statuses", headers=h).status_code

    assert [get("192.0.2.1") for _ in range(3)] == [200, 200, 429]
    assert get("192.0.2.2") == 200


def test_429_says_when_to_come_back(redis_url: str) -> None:
    client, _ = make(redis_url, rate_limit_per_minute=2)
    first = client.get("/statuses")
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-RateLimit-Remaining"] == "1"
    client.get("/statuses")
    r = client.get("/statuses")
    assert r.status_code == 429 and "rate limit" in r.get_json()["error"]
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.headers["Retry-After"] == r.headers["X-RateLimit-Reset"]


def test_failed_authentications_are_limited_per_address(redis_url: str) -> None:
    client, _ = make(redis_url, auth_tokens=(ALICE,), auth_failures_per_minute=3)
    wrong = [client.get("/statuses", headers={"X-Auth-Token": f"guess{i}"}) for i in range(3)]
    assert [r.status_code for r in wrong] == [401, 401, 401]
    # Locked out: the right token gets the same answer as a wrong one (no oracle).
    r = client.get("/statuses", headers=A)
    assert r.status_code == 429 and "STOCKADE_AUTH_FAILURES_PER_MINUTE" in r.get_json()["error"]
    assert "Retry-After" in r.headers
    assert client.post("/authenticate", headers={"X-Auth-Token": "guess"}).status_code == 429
    other = {"REMOTE_ADDR": "192.0.2.9"}
    assert client.get("/statuses", headers=A, environ_base=other).status_code == 200
    # Missing tokens guess nothing and lock nobody out.
    client, _ = make(redis_url, auth_tokens=(ALICE,), auth_failures_per_minute=1,
                     redis_prefix="u:")  # fmt: skip
    assert [client.get("/statuses").status_code for _ in range(3)] == [401] * 3
    assert client.get("/statuses", headers=A).status_code == 200


def test_wrong_authz_tokens_count_as_failures(redis_url: str) -> None:
    client, _ = make(redis_url, authz_tokens=("adm",), auth_failures_per_minute=2)
    codes = [client.get("/submissions", headers={"X-Auth-User": f"g{i}"}).status_code
             for i in range(3)]  # fmt: skip
    assert codes == [403, 403, 429]
    # Without AUTHZ tokens there is nothing to guess: a Judge0 client that always sends
    # X-Auth-User is not locked out.
    client, _ = make(redis_url, auth_failures_per_minute=1, redis_prefix="u:")
    codes = [client.get("/statuses", headers={"X-Auth-User": "x"}).status_code for _ in "abc"]
    assert codes == [200, 200, 200]


def test_tokens_are_compared_in_constant_time(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    client, _ = make(redis_url, auth_tokens=(ALICE, BOB, "carol"))
    assert client.get("/statuses", headers={"X-Auth-Token": ALICE[:-1]}).status_code == 401
    # Every configured token compared, each as a digest of one length, the guess too.
    assert len(calls) == 3 and {len(a) for a, b in calls} | {len(b) for a, b in calls} == {64}
    calls.clear()
    assert client.get("/statuses", headers=A).status_code == 200
    assert len(calls) == 3  # found at the first, compared with all


def test_a_redis_at_maxmemory_answers_503_and_stores_nothing(redis_url: str) -> None:
    client, store = make(redis_url)
    store.redis.config_set("maxmemory-policy", "noeviction")
    store.redis.config_set("maxmemory", 1)
    try:
        r = client.post("/submissions", json=HELLO)
    finally:
        store.redis.config_set("maxmemory", 0)
    assert r.status_code == 503 and "refuses writes" in r.get_json()["error"]
    assert store.queue_depth() == 0 and not store.redis.keys("t:sub:*")
    assert isinstance(store.redis, redis.Redis)
