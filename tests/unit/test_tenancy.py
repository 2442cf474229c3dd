"""A submission belongs to the token that made it: the owner recorded (as a digest), listing and
deleting only with an X-Auth-User token (Judge0's AUTHZ), deleting only when switched on and
only when finished, reading by token open unless the operator asks for owner-only reads. The
Flask test client on a real redis-server, no worker."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from flask.testing import FlaskClient

from service import commands, create_app
from service.auth import digest
from service.config import Config
from tests.unit.redis_server import redis_url
from tests.unit.service_app import HELLO, ok_result
from worker.jobs.store import Store

__all__ = ["redis_url"]

ALICE, BOB, ADMIN = "alice-token-1", "bob-token-2", "admin-token-3"
A, B = {"X-Auth-Token": ALICE}, {"X-Auth-Token": BOB}
ADM = {"X-Auth-Token": BOB, "X-Auth-User": ADMIN}


def make(redis_url: str, **overrides: Any) -> tuple[FlaskClient, Store]:
    config = Config(redis_url=redis_url, redis_prefix="t:", wait_timeout_s=0.2)
    app = create_app(config.replace(**overrides))
    return app.test_client(), app.extensions["stockade"].store


def tenants(redis_url: str, **overrides: Any) -> tuple[FlaskClient, Store]:
    return make(redis_url, auth_tokens=(ALICE, BOB), authz_tokens=(ADMIN,), **overrides)


def finished(store: Store, token: str) -> None:
    store.start(token)
    store.finish(token, 3, ok_result())


def test_the_owner_is_a_digest_and_no_token_is_ever_stored(redis_url: str) -> None:
    client, store = tenants(redis_url, rate_limit_per_minute=100)
    token = client.post("/submissions", json=HELLO, headers=A).get_json()["token"]
    client.get("/submissions", headers={**A, "X-Auth-User": "a-wrong-guess"})
    rec = store.get(token)
    assert rec is not None
    assert rec.owner == hashlib.sha256(b"stockade-token:" + ALICE.encode()).hexdigest()
    # Not in a record, not in a rate limit's key, not anywhere: Redis never holds a token.
    for key in store.redis.scan_iter():
        assert b"token-" not in key and b"a-wrong-guess" not in key, key
        if store.redis.type(key) == b"hash":
            for field, value in store.redis.hgetall(key).items():
                assert b"alice-token" not in value and b"a-wrong-guess" not in value, field


@pytest.mark.parametrize("auth", [True, False])
def test_listing_needs_an_authz_token(redis_url: str, auth: bool) -> None:
    client, _ = tenants(redis_url) if auth else make(redis_url, authz_tokens=(ADMIN,))
    me = A if auth else {}
    client.post("/submissions", json={**HELLO, "stdin": "alice's secret"}, headers=me)
    r = client.get("/submissions?fields=*", headers=me)
    assert r.status_code == 403 and "X-Auth-User" in r.get_json()
    assert "secret" not in r.get_data(as_text=True)
    r = client.get("/submissions?fields=*", headers={**me, "X-Auth-User": "guess"})
    assert r.status_code == 403
    r = client.get("/submissions?fields=stdin", headers={**me, "X-Auth-User": ADMIN})
    assert r.status_code == 200 and r.get_json()["submissions"] == [{"stdin": "alice's secret"}]


def test_without_authz_tokens_nobody_lists_or_deletes(redis_url: str) -> None:
    client, _ = make(redis_url, enable_submission_delete=True)
    r = client.get("/submissions")
    assert r.status_code == 403
    assert "STOCKADE_AUTHZ_TOKENS" in r.get_json()["X-Auth-User"][0]
    assert client.post("/authorize").status_code == 403  # Judge0 answers so too
    assert client.delete("/submissions/x").status_code == 403


@pytest.mark.parametrize("api", ["judge0", "native"])
def test_delete_is_authz_switched_on_and_finished_only(redis_url: str, api: str) -> None:
    prefix, key = ("", "token") if api == "judge0" else ("/api/v1", "id")
    client, store = tenants(redis_url)
    token = client.post(f"{prefix}/submissions", json=HELLO, headers=A).get_json()[key]
    url = f"{prefix}/submissions/{token}"
    # Not the owner's to delete either: only X-Auth-User, as Judge0.
    assert client.delete(url, headers=A).status_code == 403
    r = client.delete(url, headers=ADM)
    assert r.status_code == 400 and "STOCKADE_ENABLE_SUBMISSION_DELETE" in r.get_json()["error"]
    client, store = tenants(redis_url, enable_submission_delete=True)
    r = client.delete(url, headers=ADM)  # still In Queue: some client's pending work
    # Judge0 answers {"error": ...} here; the native API names the field.
    why = r.get_json()["error"] if api == "judge0" else r.get_json()[key][0]
    assert r.status_code == 400 and "In Queue" in why
    assert store.get(token) is not None and store.queue_depth() == 1
    finished(store, token)
    assert client.delete(url, headers=ADM).status_code == 200
    assert store.get(token) is None and store.open_count(f"token:{digest(ALICE)}") == 0


@pytest.mark.parametrize("owner_only", [False, True])
def test_reading_by_token_is_open_unless_owner_only(redis_url: str, owner_only: bool) -> None:
    client, store = tenants(redis_url, owner_only_reads=owner_only)
    j0 = client.post("/submissions", json=HELLO, headers=A).get_json()["token"]
    nat = client.post("/api/v1/submissions", json=HELLO, headers=A).get_json()["id"]
    finished(store, j0)
    finished(store, nat)
    reads = {
        f"/submissions/{j0}?fields=*": ("token", 200),
        f"/api/v1/submissions/{nat}": ("id", 200),
        f"/api/v1/submissions/{nat}?wait=true": ("id", 200),
    }
    for url, (field, _) in reads.items():
        assert client.get(url, headers=A).status_code == 200, url
        assert client.get(url, headers=ADM).status_code == 200, url
        r = client.get(url, headers=B)
        if owner_only:
            assert r.status_code == 404, url
            body = r.get_json()
            why = body["error"] if field == "token" else body[field][0]  # Judge0's shape
            assert "STOCKADE_OWNER_ONLY_READS" in why
        else:
            assert r.status_code == 200, url
    batch = client.get(f"/submissions/batch?tokens={j0}", headers=B).get_json()["submissions"]
    assert (batch == [None]) is owner_only
    batch = client.get(f"/api/v1/submissions/batch?ids={nat}", headers=B).get_json()
    assert (batch["submissions"] == [None]) is owner_only


def test_owner_only_reads_needs_auth_tokens(redis_url: str) -> None:
    with pytest.raises(ValueError, match="STOCKADE_OWNER_ONLY_READS: needs STOCKADE_AUTH_TOKENS"):
        make(redis_url, owner_only_reads=True)
    with pytest.raises(ValueError, match="STOCKADE_OWNER_ONLY_READS"):
        Config.from_env({"STOCKADE_OWNER_ONLY_READS": "1"})


def test_serve_says_once_that_auth_is_off(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Exec(Exception):
        pass

    def execv(path: str, argv: list[str]) -> None:
        raise Exec(argv)

    monkeypatch.setattr(commands.os, "execv", execv)
    monkeypatch.delenv("STOCKADE_AUTH_TOKENS", raising=False)
    args = commands.argparse.Namespace(command="serve", host="127.0.0.1", port=2358)
    with pytest.raises(Exec) as e:
        commands.run_service(args)
    assert "127.0.0.1:2358" in e.value.args[0]  # the bind address is still loopback
    err = capsys.readouterr().err
    assert err.count("auth is off") == 1 and "STOCKADE_AUTH_TOKENS" in err
    monkeypatch.setenv("STOCKADE_AUTH_TOKENS", "s3cret")
    with pytest.raises(Exec):
        commands.run_service(args)
    assert "auth is off" not in capsys.readouterr().err
    parser = commands.argparse.ArgumentParser()
    commands.add_service_parsers(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["serve"]).host == "127.0.0.1"
