"""Native, Piston, OpenAPI, metrics and the abuse limits, on a real Redis with no worker."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service import create_app
from service.config import Config
from tests.unit.redis_server import redis_url
from tests.unit.service_app import HELLO, app, client, ok_result, queued_tokens, settings, store
from worker.jobs import heartbeat
from worker.jobs.store import Store

__all__ = ["app", "client", "redis_url", "settings", "store"]


def finish_next(store: Store, result: dict[str, Any], status: int = 3) -> None:
    """Plays the worker: judges the next queued task as soon as it appears."""

    def run() -> None:
        while not queued_tokens(store):
            pass
        token = queued_tokens(store)[0]
        store.start(token)
        store.finish(token, status, result)

    threading.Thread(target=run).start()


def test_native_submit_get_wait_delete(client: FlaskClient, store: Store, redis_url: str) -> None:
    body = {"source_code": "print(1)", "language": "python3", "test_cases": [{"input": "1"}]}
    r = client.post("/api/v1/submissions", json=body)
    assert r.status_code == 201
    token = r.get_json()["id"]
    assert queued_tokens(store) == [token]
    assert client.get(f"/api/v1/submissions/{token}").get_json()["status"]["id"] == 1
    store.finish(token, 3, ok_result())
    got = client.get(f"/api/v1/submissions/{token}?wait=true").get_json()
    assert got["verdict"] == "AC" and got["final"] and got["memory_bytes"] == 9 * 1024 * 1024
    # Deleting is Judge0's: an X-Auth-User token, and only where the operator switched it on
    # (tests/unit/test_tenancy.py holds the rest of the rules).
    assert client.delete(f"/api/v1/submissions/{token}").status_code == 403
    admin = make(redis_url, authz_tokens=("adm",), enable_submission_delete=True).test_client()
    r = admin.delete(f"/api/v1/submissions/{token}", headers={"X-Auth-User": "adm"})
    assert r.status_code == 200
    assert client.get(f"/api/v1/submissions/{token}").status_code == 404


def test_native_tiers_batch_and_info(client: FlaskClient, store: Store) -> None:
    r = client.post("/api/v1/submissions", json={**HELLO, "tier": "gvisor"})
    assert r.status_code == 422
    assert r.get_json()["tier"] == ["gvisor is not served by any live worker (served: container)"]
    r = client.post("/api/v1/submissions/batch", json={"submissions": [HELLO, HELLO]})
    ids = r.get_json()["ids"]
    assert len(ids) == 2 and queued_tokens(store) == ids
    r = client.get(f"/api/v1/submissions/batch?ids={','.join(ids)}")
    assert [s["id"] for s in r.get_json()["submissions"]] == ids
    r = client.post("/api/v1/submissions/batch", json={"submissions": [HELLO] * 21})
    assert r.status_code == 422 and "submissions" in r.get_json()
    assert any(lang["key"] == "python3" for lang in client.get("/api/v1/languages").get_json())
    assert client.get("/api/v1/health").get_json()["status"] == "ok"
    assert "/api/v1/submissions" in client.get("/openapi.json").get_json()["paths"]
    assert client.get("/docs").status_code == 200


def test_piston_execute(client: FlaskClient, store: Store) -> None:
    runtimes = client.get("/api/v2/runtimes").get_json()
    assert any(rt["language"] == "python" for rt in runtimes)
    finish_next(store, ok_result("hi\n"))
    r = client.post(
        "/api/v2/execute",
        json={"language": "python", "version": "*", "files": [{"content": "print('hi')"}]},
    )
    assert r.status_code == 200
    out = r.get_json()
    assert out["run"]["stdout"] == "hi\n" and out["run"]["code"] == 0 and "compile" not in out
    r = client.post("/api/v2/execute", json={"language": "swift", "files": [{"content": ""}]})
    assert r.status_code == 400 and "unknown" in r.get_json()["message"]


def test_metrics_after_a_result(client: FlaskClient, store: Store) -> None:
    token = client.post("/submissions", json=HELLO).get_json()["token"]
    store.start(token)
    store.finish(token, 3, {**ok_result(), "timings": {"compile_s": 0.0, "run_s": 0.02}})
    text = client.get("/metrics").data.decode()
    assert "stockade_queue_depth 0.0" in text
    assert 'stockade_submissions_total{status="Accepted",status_id="3"} 1.0' in text
    assert "stockade_end_to_end_seconds_count 1.0" in text
    assert 'stockade_run_seconds_bucket{le="0.04"} 1.0' in text


def make(redis_url: str, **overrides: Any) -> Flask:
    return create_app(Config(redis_url=redis_url, redis_prefix="t:").replace(**overrides))


def test_auth_rate_limit_and_caps(redis_url: str) -> None:
    c = make(redis_url, auth_tokens=("s3cret",), rate_limit_per_minute=3).test_client()
    assert c.get("/languages").status_code == 401
    assert c.post("/authenticate").status_code == 401
    h = {"X-Auth-Token": "s3cret"}
    assert [c.get("/statuses", headers=h).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert c.get("/metrics").status_code == 200  # exempt
    # The playground page and its files are public and not counted (the page asks for a token).
    for path in ("/", "/playground/playground.js", "/playground/playground.css"):
        assert c.get(path).status_code == 200, path
    c = make(redis_url, max_queue_depth=1, max_body_bytes=1000, max_source_bytes=100).test_client()
    assert c.post("/submissions", json=HELLO).status_code == 201
    r = c.post("/submissions", json=HELLO)
    assert r.status_code == 503 and r.get_json() == {"error": "queue is full"}
    r = c.post("/submissions", json={**HELLO, "source_code": "x" * 2000})
    assert r.status_code == 413 and "body" in r.get_json()
    r = c.post("/submissions", json={**HELLO, "source_code": "x" * 200})
    assert r.status_code == 413 and "source_code" in r.get_json()


def test_checker_and_interactor_are_capped_like_the_program(redis_url: str) -> None:
    """A checker's or interactor's source has source_code's cap (413 naming the field), and
    its args the command line's (422 naming the field and the rule)."""
    c = make(redis_url, max_source_bytes=100).test_client()
    small = {"source_code": "print(1)", "language_id": 71}
    big = {"source_code": "x" * 200, "language_id": 71}
    sub = {**HELLO, "expected_output": "hi\n"}
    big_args = {**small, "args": ["a" * 600]}
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"checker": {"kind": "custom", "program": big}}, 413, "checker.program.source_code", ""),
        ({"interactor": big}, 413, "interactor.source_code", "at most 100 bytes"),
        ({"checker": {"kind": "custom", "program": big_args}}, 422, "checker.program.args", "512"),
        ({"interactor": {**small, "args": ["ok"] * 300}}, 422, "interactor.args", "512"),
        ({"interactor": {**small, "args": ["ok", 7]}}, 422, "interactor.args", "list of strings"),
    ]
    for extra, status, field, rule in cases:
        for path in ("/submissions", "/api/v1/submissions"):
            r = c.post(path, json={**sub, **extra})
            body = r.get_json()
            assert r.status_code == status and rule in str(body.get(field)), (path, field, body)
    ok = {"checker": {"kind": "custom", "program": {**small, "args": ["a" * 100] * 5}}}
    assert c.post("/api/v1/submissions", json={**sub, **ok}).status_code == 201


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("STOCKADE_MAX_QUEUE_DEPTH", "5", 5), ("STOCKADE_ALLOW_NETWORK", "yes", True)],
)
def test_config_from_env(name: str, value: str, expected: object) -> None:
    config = Config.from_env({name: value, "STOCKADE_MAX_CPU_TIME_LIMIT": "2"})
    field = name.removeprefix("STOCKADE_").lower()
    assert getattr(config, field) == expected and config.max_limits["cpu_time_limit"] == 2.0
    with pytest.raises(ValueError, match="STOCKADE_RESULT_TTL_S"):
        Config.from_env({"STOCKADE_RESULT_TTL_S": "soon"})


def _beat(store: Store, hostname: str, tiers: dict[str, str | None], age_s: float = 0.0) -> None:
    """A worker's heartbeat, written as the worker writes it."""
    now = time.time() - age_s
    beat = heartbeat.Beat(hostname, 1, 2, tiers, now, now)
    store.redis.hset(store.prefix + heartbeat.KEY, hostname, beat.to_json())


def test_tier_follows_live_workers_and_operator_minimum(settings: dict[str, Any]) -> None:
    config = Config().replace(**settings, min_tier="gvisor")
    app = create_app(config)
    client, store = app.test_client(), app.extensions["stockade"].store
    gone = {"container": None, "gvisor": None, "microvm": "no qemu"}
    _beat(store, "old", gone, age_s=heartbeat.STALE_S + 1)
    # The operator's minimum raises a container request; no live worker serves it yet.
    r = client.post("/api/v1/submissions", json=HELLO)
    assert r.status_code == 422 and "gvisor is not served" in r.get_json()["tier"][0]
    _beat(store, "w1", gone)
    client = create_app(config).test_client()  # a fresh API: live workers are cached briefly
    r = client.post("/api/v1/submissions", json={**HELLO, "tier": "container"})
    assert r.status_code == 201
    got = client.get(f"/api/v1/submissions/{r.get_json()['id']}").get_json()
    assert got["tier"] == "gvisor"
    r = client.post("/api/v1/submissions", json={**HELLO, "isolation": "microvm"})
    assert r.status_code == 422 and "microvm is not served" in r.get_json()["tier"][0]
    health = client.get("/api/v1/health").get_json()
    assert health["tiers"] == ["container", "gvisor"] and health["workers"] == 1
    workers = client.get("/workers").get_json()
    assert [w["hostname"] for w in workers[0]["workers"]] == ["w1"]
    assert workers[0]["available"] == 2
    # The stale worker's entry was dropped by the reader.
    assert store.redis.hkeys(store.prefix + heartbeat.KEY) == [b"w1"]
