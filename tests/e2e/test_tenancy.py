"""Many clients, one service, on the real stack: a submission is its token's (owner-only reads,
listing and deleting only with X-Auth-User, a queued one never deleted), budgets refused with
a 429 or 422 that names the rule, a worker that keeps its own output and result caps, and,
with auth off, cross-site requests refused."""

from __future__ import annotations

import httpx
import redis

from tests.e2e.conftest import PYTHON, Stack, poll, stop

SECRET = "the hidden input"
ALICE = {"X-Auth-Token": "alice-e2e"}
BOB = {"X-Auth-Token": "bob-e2e"}
ADMIN = {**BOB, "X-Auth-User": "adm-e2e"}


def test_a_submission_is_its_tokens(stack: Stack) -> None:
    url = stack.start_api(
        "api-tenants",
        STOCKADE_AUTH_TOKENS="alice-e2e,bob-e2e",
        STOCKADE_AUTHZ_TOKENS="adm-e2e",
        STOCKADE_OWNER_ONLY_READS="1",
        STOCKADE_ENABLE_SUBMISSION_DELETE="1",
    )
    body = {"source_code": "print(input()[::-1])", "language_id": PYTHON, "stdin": SECRET}
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/submissions?wait=true", json=body, headers=ALICE)
        assert r.status_code == 201 and r.json()["status"]["id"] == 3, r.text
        token = r.json()["token"]
        mine = c.get(f"/submissions/{token}?fields=stdin,stdout", headers=ALICE)
        assert mine.json() == {"stdin": SECRET, "stdout": SECRET[::-1] + "\n"}
        theirs = c.get(f"/submissions/{token}?fields=*", headers=BOB)
        assert theirs.status_code == 404 and SECRET not in theirs.text
        assert "STOCKADE_OWNER_ONLY_READS" in theirs.json()["error"]  # Judge0's 404 shape
        for who in (ALICE, BOB):
            listing = c.get("/submissions?fields=*", headers=who)
            assert listing.status_code == 403 and SECRET not in listing.text
            assert c.delete(f"/submissions/{token}", headers=who).status_code == 403
        listing = c.get("/submissions?fields=token", headers=ADMIN)
        assert {"token": token} in listing.json()["submissions"]
        # A job still waiting or running is someone's pending work: never deleted.
        slow = {"source_code": "import time; time.sleep(1.5)", "language_id": PYTHON}
        pending = c.post("/api/v1/submissions", json=slow, headers=ALICE).json()["id"]
        r = c.delete(f"/api/v1/submissions/{pending}", headers=ADMIN)
        assert r.status_code == 400 and "cannot delete" in r.json()["id"][0]
        with httpx.Client(base_url=url, timeout=60, headers=ALICE) as alice:
            assert poll(alice, pending)["status"] == {"id": 3, "description": "Accepted"}
        assert c.delete(f"/submissions/{token}", headers=ADMIN).status_code == 200
        assert c.get(f"/submissions/{token}", headers=ALICE).status_code == 404


def test_budgets_are_refused_naming_the_rule(stack: Stack) -> None:
    # No worker reads this queue: what is accepted stays In Queue and holds its budget.
    url = stack.start_api(
        "api-budgets",
        STOCKADE_AUTH_TOKENS="alice-e2e,bob-e2e",
        STOCKADE_MAX_QUEUED_PER_CLIENT="2",
        STOCKADE_QUEUE="nobody-reads-tenancy",
        STOCKADE_REDIS_PREFIX="tenancy-budgets:",
    )
    hello = {"source_code": "print(1)", "language_id": PYTHON}
    with httpx.Client(base_url=url, timeout=30) as c:
        codes = [c.post("/submissions", json=hello, headers=ALICE).status_code for _ in "abc"]
        assert codes == [201, 201, 429]
        r = c.post("/submissions", json=hello, headers=ALICE)
        assert "STOCKADE_MAX_QUEUED_PER_CLIENT" in r.json()["error"]
        assert int(r.headers["Retry-After"]) > 0
        assert c.post("/submissions", json=hello, headers=BOB).status_code == 201
        cases = [{"input": str(i)} for i in range(201)]
        r = c.post("/api/v1/submissions", json={**hello, "test_cases": cases}, headers=BOB)
        assert r.status_code == 422
        assert "STOCKADE_MAX_RUNS_PER_SUBMISSION=200" in r.json()["test_cases"][0]


def test_the_worker_keeps_its_own_caps(stack: Stack) -> None:
    """A worker whose operator keeps less than any API allows: what it stores is its own."""
    env = {
        "STOCKADE_QUEUE": "tenancy-caps",
        "STOCKADE_REDIS_PREFIX": "tenancy-caps:",
        "STOCKADE_KEPT_OUTPUT_TOTAL": str(64 * 1024),
        "STOCKADE_MAX_RESULT_BYTES": str(48 * 1024),
    }
    worker = stack.start_worker("worker-caps", STOCKADE_SELF_TEST="0", **env)
    try:
        url = stack.start_api("api-caps", **env)
        loud = {
            "source_code": "import sys; sys.stdout.write('x' * 131072)",
            "language_id": PYTHON,
            "test_cases": [{"input": str(i)} for i in range(20)],
        }
        with httpx.Client(base_url=url, timeout=120) as c:
            r = c.post("/api/v1/submissions?wait=true", json=loud)
            got = r.json()
            assert r.status_code == 201 and got["verdict"] == "AC", r.text[:2000]
            kept = sum(len(case["stdout"]) + len(case["stderr"]) for case in got["cases"])
            assert kept <= 48 * 1024 and len(got["cases"]) == 20
            assert got["cases"][-1]["truncated"] is True
        store = redis.Redis.from_url(stack.redis_url)
        try:
            stored = store.hget(f"tenancy-caps:sub:{got['id']}", "result")
            assert stored is not None and len(stored) <= 48 * 1024
        finally:
            store.close()
    finally:
        stop(worker)
        stack.procs.remove(worker)


def test_with_auth_off_cross_site_requests_are_refused(stack: Stack) -> None:
    body = '{"source_code": "print(1)", "language_id": 71}'
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        r = c.post("/submissions", content=body, headers={"Content-Type": "text/plain"})
        assert r.status_code == 415 and "Content-Type" in r.json()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert c.post("/submissions", content=body, headers=form).status_code == 415
        r = c.get("/languages", headers={"Host": f"rebound.example:{stack.url.rsplit(':')[-1]}"})
        assert r.status_code == 403 and "Host" in r.json()
        r = c.post("/submissions", json={}, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "Origin" in r.json()
        r = c.post("/submissions?wait=true", content=body,
                   headers={"Content-Type": "application/json"})  # fmt: skip
        assert r.status_code == 201 and r.json()["stdout"] == "1\n"
