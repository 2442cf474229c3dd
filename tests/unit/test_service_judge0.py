"""The Judge0-compatible API with Flask's test client on a real Redis, no Celery worker."""

from __future__ import annotations

import base64
import threading

from flask.testing import FlaskClient

from service import create_app
from service.config import Config
from tests.unit.redis_server import redis_url
from tests.unit.service_app import HELLO, app, client, ok_result, queued_tokens, settings, store
from worker.jobs.store import Store

__all__ = ["app", "client", "redis_url", "settings", "store"]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_post_stores_then_queues_and_get_shows_result(client: FlaskClient, store: Store) -> None:
    r = client.post("/submissions/", json=HELLO)
    assert r.status_code == 201
    token = r.get_json()["token"]
    assert queued_tokens(store) == [token]
    r = client.get(f"/submissions/{token}")
    assert r.get_json()["status"] == {"id": 1, "description": "In Queue"}
    store.start(token)
    store.finish(token, 3, ok_result())
    body = client.get(f"/submissions/{token}?fields=*").get_json()
    assert body["stdout"] == "hi\n" and body["time"] == "0.012" and body["memory"] == 9216
    assert body["status"] == {"id": 3, "description": "Accepted"}
    assert body["language"]["id"] == 71 and body["created_at"].endswith("Z")
    body = client.get(f"/submissions/{token}?base64_encoded=true&fields=stdout,status_id")
    assert body.get_json() == {"stdout": b64("hi\n"), "status_id": 3}


def test_wait_returns_when_the_worker_finishes(client: FlaskClient, store: Store) -> None:
    def worker() -> None:
        while not queued_tokens(store):
            pass
        token = queued_tokens(store)[0]
        store.start(token)
        store.finish(token, 3, ok_result())

    threading.Thread(target=worker).start()
    r = client.post(
        "/submissions?base64_encoded=true&wait=true",
        json={"source_code": b64("print('hi')"), "language_id": 71},
    )
    assert r.status_code == 201
    assert r.get_json()["stdout"] == b64("hi\n")


def test_bad_input_is_4xx_naming_the_field(client: FlaskClient) -> None:
    r = client.post("/submissions", data="{nope", content_type="application/json")
    assert r.status_code == 400 and "body" in r.get_json()
    r = client.post("/submissions", json={"source_code": "x", "language_id": 9999})
    assert r.status_code == 422 and "language_id" in r.get_json()
    r = client.post("/submissions?base64_encoded=true", json={**HELLO, "source_code": "%%%"})
    assert r.status_code == 422 and "source_code" in r.get_json()
    r = client.post("/submissions", json={**HELLO, "cpu_time_limit": 100})
    assert r.status_code == 422 and "cpu_time_limit" in r.get_json()
    r = client.post("/submissions", json={**HELLO, "memory_limit": "lots"})
    assert r.status_code == 422 and "memory_limit" in r.get_json()
    r = client.post("/submissions", json={**HELLO, "test_cases": "abc"})
    assert r.status_code == 422 and "test_cases" in r.get_json()
    r = client.post("/submissions", json={**HELLO, "enable_network": True})
    assert r.status_code == 422 and "enable_network" in r.get_json()
    r = client.post("/submissions", json={**HELLO, "compiler_options": "-O2; rm -rf /"})
    assert r.status_code == 422 and "compiler_options" in r.get_json()
    r = client.post("/submissions", json={**HELLO, "callback_url": "http://127.0.0.1/x"})
    assert r.status_code == 422 and "callback_url" in r.get_json()
    # Judge0's {"error": ...} shape where it is not a field's rule (Rails' RecordNotFound).
    r = client.get("/submissions/nope")
    assert r.status_code == 404 and r.get_json()["error"].startswith("Not Found")
    r = client.get("/submissions/x?fields=bogus,stdout,worse")
    assert r.status_code == 400 and r.get_json() == {"error": "invalid fields: [bogus, worse]"}


def test_callback_url_ipv6_forms_of_internal_addresses_are_422(client: FlaskClient) -> None:
    """The API refuses with the workers' own guard, naming the field and the rule."""
    for host in ("[64:ff9b::a00:1]", "[::ffff:0:7f00:1]", "[2002:a00:1::1]", "[::a9fe:a9fe]"):
        r = client.post("/submissions", json={**HELLO, "callback_url": f"http://{host}/x"})
        body = r.get_json()
        assert r.status_code == 422 and "form of" in str(body["callback_url"]), (host, body)
    r = client.post("/submissions", json={**HELLO, "callback_url": "http://[64:ff9b::5db8:d822]/"})
    assert r.status_code == 201, r.get_json()


def test_batch_index_delete(client: FlaskClient, store: Store, redis_url: str) -> None:
    r = client.post(
        "/submissions/batch", json={"submissions": [HELLO, {"source_code": "x"}, HELLO]}
    )
    assert r.status_code == 201
    out = r.get_json()
    assert "token" in out[0] and "language_id" in out[1] and "token" in out[2]
    tokens = [out[0]["token"], out[2]["token"]]
    store.finish(tokens[0], 4, ok_result("no", "WA", 4))
    r = client.get(f"/submissions/batch?tokens={','.join(tokens)}&fields=token,status_id")
    assert r.get_json()["submissions"] == [
        {"token": tokens[0], "status_id": 4},
        {"token": tokens[1], "status_id": 1},
    ]
    # Listing and deleting are Judge0's AUTHZ calls: 403 without an X-Auth-User token
    # (tests/unit/test_tenancy.py holds the rest of the rules).
    assert client.get("/submissions?per_page=1").status_code == 403
    assert client.delete(f"/submissions/{tokens[0]}").status_code == 403
    config = Config(redis_url=redis_url, redis_prefix="t:", authz_tokens=("adm",),
                    enable_submission_delete=True)  # fmt: skip
    admin, h = create_app(config).test_client(), {"X-Auth-User": "adm"}
    page = admin.get("/submissions?per_page=1", headers=h).get_json()
    assert page["meta"]["total_count"] == 2 and page["meta"]["total_pages"] == 2
    assert admin.delete(f"/submissions/{tokens[1]}", headers=h).status_code == 400  # In Queue
    assert admin.delete(f"/submissions/{tokens[0]}", headers=h).status_code == 200
    assert client.get(f"/submissions/{tokens[0]}").status_code == 404


def test_reference_endpoints(client: FlaskClient) -> None:
    langs = client.get("/languages").get_json()
    assert {"id": 71, "name": "Python (3.11.2)"} in langs
    assert any(lang["id"] == 52 for lang in langs)  # the SDK's C++ id
    assert client.get("/languages/71/").get_json()["source_file"] == "script.py"
    assert client.get("/languages/1000").status_code == 404
    # /languages/all adds the ids no Debian 12 toolchain serves, as archived.
    every = client.get("/languages/all").get_json()
    assert len(every) == len(langs) + 5
    assert {"id": 70, "name": "Python (2.7.17)", "is_archived": True} in every
    statuses = client.get("/statuses").get_json()
    assert [s["id"] for s in statuses] == list(range(1, 15))
    assert client.get("/config_info").get_json()["max_submission_batch_size"] == 20
    assert client.get("/about").get_json()["version"] == "1.13.1"
    assert client.get("/version").data == b"1.13.1"
    for path in ("/system_info", "/license", "/statistics", "/workers"):
        assert client.get(path).status_code == 200, path
    assert client.post("/authenticate").status_code == 200
    # Judge0's authorize_request: no AUTHZ_TOKEN configured, no call is authorized.
    assert client.post("/authorize").status_code == 403
