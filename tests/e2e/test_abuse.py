"""Abuse limits on the real stack: auth tokens, rate limits, the queue cap (503), size caps
(413), batch size cap. Each runs its own API process with the setting under test."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import PYTHON, Stack

HELLO = {"source_code": "print(1)", "language_id": PYTHON}


def test_auth_tokens(stack: Stack) -> None:
    url = stack.start_api(
        "api-auth",
        STOCKADE_AUTH_TOKENS="s3cret",
        STOCKADE_AUTHZ_TOKENS="adm",
        STOCKADE_ENABLE_SUBMISSION_DELETE="1",
    )
    with httpx.Client(base_url=url, timeout=30) as c:
        assert c.get("/languages").status_code == 401
        assert c.post("/authenticate").status_code == 401
        ok = {"X-Auth-Token": "s3cret"}
        assert c.post("/authenticate", headers=ok).status_code == 200
        assert c.get("/languages", headers=ok).status_code == 200
        assert c.post("/authorize", headers=ok).status_code == 403
        assert c.post("/authorize", headers={**ok, "X-Auth-User": "adm"}).status_code == 200
        r = c.post("/submissions?wait=true", json=HELLO, headers=ok)
        assert r.status_code == 201 and r.json()["status"]["id"] == 3
        token = r.json()["token"]
        assert c.delete(f"/submissions/{token}", headers=ok).status_code == 403
        assert (
            c.delete(f"/submissions/{token}", headers={**ok, "X-Auth-User": "adm"}).status_code
            == 200
        )


def test_rate_limit(stack: Stack) -> None:
    url = stack.start_api("api-rate", STOCKADE_RATE_LIMIT_PER_MINUTE="5")
    with httpx.Client(base_url=url, timeout=30) as c:
        codes = [c.get("/statuses").status_code for _ in range(8)]
    assert codes[:5] == [200] * 5 and 429 in codes[5:]


def test_queue_cap_answers_503(stack: Stack) -> None:
    # No worker reads this queue: submissions stay In Queue and fill the cap.
    url = stack.start_api(
        "api-capped",
        STOCKADE_MAX_QUEUE_DEPTH="2",
        STOCKADE_MAX_QUEUE_SHARE="1",  # the whole queue is this one client's to fill
        STOCKADE_QUEUE="nobody-reads-this",
        STOCKADE_REDIS_PREFIX="capped:",
    )
    with httpx.Client(base_url=url, timeout=30) as c:
        codes = [c.post("/submissions", json=HELLO).status_code for _ in range(3)]
    assert codes == [201, 201, 503]


def test_source_and_batch_caps(stack: Stack) -> None:
    url = stack.start_api(
        "api-sizes", STOCKADE_MAX_SOURCE_BYTES="1024", STOCKADE_MAX_BATCH_SIZE="2"
    )
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/submissions", json={**HELLO, "source_code": "#" * 2000})
        assert r.status_code == 413 and "source_code" in r.text
        r = c.post("/submissions/batch", json={"submissions": [HELLO] * 3})
        # Judge0's answer to a batch over MAX_SUBMISSION_BATCH_SIZE.
        assert r.status_code == 400 and "less than or equal to 2" in r.json()["error"]
