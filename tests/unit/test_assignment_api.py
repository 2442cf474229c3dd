"""Grading through the API: assignments uploaded (checked as archives and by the grading loader),
described, graded submissions queued as jobs, and what a student-facing token sees of the
results. The Flask test client on a real redis-server; the worker's side is tests/e2e's."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from service import create_app
from service.config import Config
from tests.unit.redis_server import redis_url
from tests.unit.service_app import queued_tokens
from worker.jobs.assignments import Audience, shown_results, submission_files
from worker.jobs.store import Store

__all__ = ["redis_url"]

ROOT = Path(__file__).resolve().parents[1] / "assignments"
PYCALC = ROOT / "pycalc" / "assignment"
OWNER, STUDENT, STAFF = "owner-token-1", "student-token-2", "staff-user-3"
ANOTHER = "student-token-4"
OWN, S = {"X-Auth-Token": OWNER}, {"X-Auth-Token": STUDENT}
PAST, FUTURE = "2020-01-01T00:00:00Z", "2999-01-01T00:00:00+02:00"


def make(redis_url: str, **overrides: Any) -> tuple[FlaskClient, Store]:
    config = Config(
        redis_url=redis_url,
        redis_prefix="t:",
        wait_timeout_s=0.2,
        auth_tokens=(OWNER, STUDENT, ANOTHER),
        authz_tokens=(STAFF,),
    )
    app = create_app(config.replace(**overrides))
    return app.test_client(), app.extensions["stockade"].store


def zipped(files: dict[str, bytes], top: str = "") -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in sorted(files.items()):
            zf.writestr(f"{top}{name}", content)
    return base64.b64encode(buf.getvalue()).decode()


def pycalc(**replace: bytes) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in PYCALC.iterdir() if p.is_file()}
    return {**files, **replace}


def upload(client: FlaskClient, files: dict[str, bytes], **extra: Any) -> Any:
    body = {"assignment": zipped(files), **extra}
    return client.post("/api/v1/assignments", json=body, headers=OWN)


def test_upload_describes_it_and_hides_hidden_tests_from_students(redis_url: str) -> None:
    client, _ = make(redis_url)
    r = upload(client, pycalc())
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assignment = body["id"]
    assert re.fullmatch(r"[0-9a-f]{64}", assignment)
    assert body["format"] == "native" and body["name"] == "Calculator"
    assert [t["name"] for t in body["tests"]] == ["add", "multiply", "divide", "prints a sum"]
    assert body["max_score"] == 10 and body["withheld_tests"] == 0
    # Zipped in a folder of its own: other bytes, the same files, the same assignment.
    again = client.post(
        "/api/v1/assignments", json={"assignment": zipped(pycalc(), "pycalc/")}, headers=OWN
    )
    assert again.status_code == 200 and again.get_json()["id"] == assignment
    student = client.get(f"/api/v1/assignments/{assignment}", headers=S).get_json()
    assert [t["name"] for t in student["tests"]] == ["add", "multiply", "prints a sum"]
    assert student["max_score"] == 6 and student["withheld_tests"] == 1
    staff = client.get(f"/api/v1/assignments/{assignment}", headers={**S, "X-Auth-User": STAFF})
    assert len(staff.get_json()["tests"]) == 4
    missing = client.get("/api/v1/assignments/" + "0" * 64, headers=S)
    assert missing.status_code == 404 and "id" in missing.get_json()


@pytest.mark.parametrize(
    ("toml", "field", "rule"),
    [
        (b'language = "python3"\n[[tests]]\nkind = "bogus"\n', "tests[0].kind", "must be one"),
        (b'language = "python3"\n', "tests", "at least one"),
        (
            b'language = "cobol-85"\n[[tests]]\nkind = "command"\ncommand = ["true"]\n',
            "language",
            "no language",
        ),
        (
            b'language = "python3"\ndue_date = "tomorrow"\n[[tests]]\nkind = "command"\n'
            b'command = ["true"]\n',
            "due_date",
            "offset",
        ),
        (b"language = = 1\n", "", "line 1"),
        (
            b'language = "python3"\n[setup]\npip = ["--index-url=http://x/ numpy"]\n'
            b'[[tests]]\nkind = "command"\ncommand = ["true"]\n',
            "setup.pip",
            "options are not taken",
        ),
        (
            b'language = "python3"\n[setup]\nscript = "install.sh"\n[[tests]]\n'
            b'kind = "command"\ncommand = ["true"]\n',
            "setup.script",
            "no file 'install.sh'",
        ),
    ],
)
def test_a_broken_assignment_toml_is_a_422_naming_the_field(
    redis_url: str, toml: bytes, field: str, rule: str
) -> None:
    client, _ = make(redis_url)
    r = upload(client, {"assignment.toml": toml})
    assert r.status_code == 422, r.get_json()
    key = f"assignment.toml: {field}" if field else "assignment.toml"
    assert rule in r.get_json()[key][0], r.get_json()


def test_hostile_or_foreign_zips_are_refused(redis_url: str) -> None:
    client, _ = make(redis_url)
    slip = upload(client, {"assignment.toml": b"", "../evil": b"x"})
    assert slip.status_code == 422 and "zip slip" in slip.get_json()["assignment"][0]
    empty = upload(client, {"README": b"nothing to grade"})
    assert empty.status_code == 422 and "run_autograder" in empty.get_json()["assignment"][0]
    r = client.post("/api/v1/assignments", json={"assignment": "%%%"}, headers=OWN)
    assert r.status_code == 422 and "base64" in r.get_json()["assignment"][0]
    r = client.post(
        "/api/v1/assignments", json={"assignment": zipped(pycalc()), "x": 1}, headers=OWN
    )
    assert r.status_code == 422 and "x" in r.get_json()


def test_a_bundle_is_taken_with_a_setup_that_installs_and_its_image(redis_url: str) -> None:
    client, _ = make(redis_url)
    bundle = ROOT / "gsbundle" / "bundle"
    files = {p.name: p.read_bytes() for p in bundle.iterdir()}
    r = upload(client, files)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["format"] == "gradescope" and body["tests"] == []
    assert body["image"] == "python3"
    # python3 named is the default: one assignment, the id it had before `image` existed.
    again = upload(client, files, image="python3")
    assert again.status_code == 200 and again.get_json()["id"] == body["id"]
    installs = upload(client, {**files, "setup.sh": b"apt-get install -y cowsay\n"})
    assert installs.status_code == 201, installs.get_json()
    # Another image is another assignment: its setup and its tests run on another system.
    other = upload(client, files, image="debian")
    assert other.status_code == 201 and other.get_json()["image"] == "debian"
    assert other.get_json()["id"] != body["id"]


def test_a_setup_pip_and_script_assignment_is_taken(redis_url: str) -> None:
    client, _ = make(redis_url)
    pysetup = ROOT / "pysetup" / "assignment"
    files = {p.relative_to(pysetup).as_posix(): p.read_bytes() for p in pysetup.rglob("*")}
    r = upload(client, {k: v for k, v in files.items() if not k.endswith("/")})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["format"] == "native"


@pytest.mark.parametrize("image", ["windows", "", 3, "../python3"])
def test_an_unknown_image_is_a_422_naming_the_field(redis_url: str, image: Any) -> None:
    client, _ = make(redis_url)
    files = {p.name: p.read_bytes() for p in (ROOT / "gsbundle" / "bundle").iterdir()}
    r = upload(client, files, image=image)
    assert r.status_code == 422, r.get_json()
    rule = r.get_json()["image"][0]
    assert "must be one of the images" in rule and "python3" in rule


def test_a_native_assignment_takes_no_image(redis_url: str) -> None:
    client, _ = make(redis_url)
    r = upload(client, pycalc(), image="python3")
    assert r.status_code == 422
    assert "names its own" in r.get_json()["image"][0]


def test_the_due_date_of_the_upload_overrides_and_changes_the_id(redis_url: str) -> None:
    client, _ = make(redis_url)
    plain = upload(client, pycalc()).get_json()
    dated = upload(client, pycalc(), due_date="2027-01-31T23:59:00+01:00").get_json()
    assert plain["due_date"] == "" and dated["due_date"] == "2027-01-31T22:59:00+00:00"
    assert plain["id"] != dated["id"]
    toml = pycalc()["assignment.toml"].replace(
        b'language = "python3"\n', b'language = "python3"\ndue_date = 2027-01-31T08:00:00-05:00\n'
    )
    own = upload(client, pycalc(**{"assignment.toml": toml})).get_json()
    assert own["due_date"] == "2027-01-31T13:00:00+00:00"
    r = upload(client, pycalc(), due_date="2027-01-31")
    assert r.status_code == 422 and "offset" in r.get_json()["due_date"][0]


def test_a_submission_is_queued_as_a_job_with_its_files(redis_url: str) -> None:
    client, store = make(redis_url)
    assignment = upload(client, pycalc()).get_json()["id"]
    calc = "def add(a, b):\n    return a + b\n"
    body = {
        "files": [
            {"name": "calc.py", "content": calc},
            {"name": "data/x.bin", "content": "AAE=", "encoding": "base64"},
        ]
    }
    r = client.post(f"/api/v1/assignments/{assignment}/submissions", json=body, headers=S)
    assert r.status_code == 201, r.get_json()
    token = r.get_json()["id"]
    assert queued_tokens(store) == [token]
    rec = store.get(token)
    assert rec is not None and rec.submission.assignment == assignment
    files = submission_files(base64.b64decode(rec.submission.additional_files))
    assert files == {"calc.py": calc.encode(), "data/x.bin": b"\0\1"}
    shown = client.get(f"/api/v1/assignments/{assignment}/submissions/{token}", headers=S)
    assert shown.get_json()["status"] == "queued" and shown.get_json()["results"] is None
    # Not a judge's submission: the other APIs do not show it.
    assert client.get(f"/api/v1/submissions/{token}", headers=S).status_code == 404
    assert client.get(f"/submissions/{token}", headers=S).status_code == 404
    # Nor of another assignment.
    other = upload(client, pycalc(**{"extra.txt": b"1"})).get_json()["id"]
    elsewhere = client.get(f"/api/v1/assignments/{other}/submissions/{token}", headers=OWN)
    assert elsewhere.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"files": [{"name": "../calc.py", "content": "x"}]}, "files"),
        (
            {"files": [{"name": "a.py", "content": "x"}, {"name": "a.py", "content": "y"}]},
            "files[1].name",
        ),
        ({"files": [{"name": "a.py", "content": "x", "encoding": "rot13"}]}, "files[0].encoding"),
        ({"files": [{"name": "a.py", "content": "!", "encoding": "base64"}]}, "files[0].content"),
        ({"files": []}, "files"),
        ({"zip": "not base64!"}, "zip"),
        ({"files": [{"name": "a.py", "content": "x"}], "zip": "UEs="}, "files"),
        ({"files": [{"name": "a.py", "content": "x"}], "source_code": "x"}, "source_code"),
    ],
)
def test_bad_submissions_are_refused_naming_the_field(
    redis_url: str, body: dict[str, Any], field: str
) -> None:
    client, store = make(redis_url)
    assignment = upload(client, pycalc()).get_json()["id"]
    r = client.post(f"/api/v1/assignments/{assignment}/submissions", json=body, headers=S)
    assert r.status_code == 422 and field in r.get_json(), r.get_json()
    assert queued_tokens(store) == []


def test_the_judge_apis_refuse_an_assignment_field(redis_url: str) -> None:
    client, store = make(redis_url)
    sub = {"source_code": "x", "language_id": 71, "assignment": "0" * 64}
    r = client.post("/api/v1/submissions", json=sub, headers=S)
    assert r.status_code == 422 and "assignment" in r.get_json()
    token = client.post("/submissions", json=sub, headers=S).get_json()["token"]
    rec = store.get(token)
    assert rec is not None and rec.submission.assignment == ""


def results(*tests: tuple[str, float, float, str], top: str = "visible") -> dict[str, Any]:
    """A results.json as the worker stores it (plus what run_job adds)."""
    return {
        "score": sum(t[1] for t in tests),
        "max_score": sum(t[2] for t in tests),
        "execution_time": 1.5,
        "output": "general feedback",
        "visibility": top,
        "tests": [
            {
                "name": n,
                "number": str(i),
                "score": s,
                "max_score": m,
                "status": "passed",
                "output": f"{n} output",
                "visibility": v,
            }
            for i, (n, s, m, v) in enumerate(tests, 1)
        ],
        "timings": {"run_s": 1.0},
        "attempts": 1,
    }


def graded(store: Store, token: str, data: dict[str, Any]) -> None:
    assert store.start(token) is not None
    store.finish(token, 3, data)


def test_results_follow_each_tests_visibility(redis_url: str) -> None:
    client, store = make(redis_url)
    assignment = upload(client, pycalc(), due_date=PAST).get_json()["id"]
    body = {"files": [{"name": "calc.py", "content": "x = 1\n"}]}
    token = client.post(
        f"/api/v1/assignments/{assignment}/submissions", json=body, headers=S
    ).get_json()["id"]
    graded(
        store,
        token,
        results(
            ("seen", 1, 1, "visible"),
            ("secret", 3, 4, "hidden"),
            ("late", 2, 2, "after_due_date"),
            ("published", 0, 3, "after_published"),
        ),
    )
    url = f"/api/v1/assignments/{assignment}/submissions/{token}"

    def names(headers: dict[str, str]) -> tuple[list[str], float, float, Any]:
        body = client.get(url, headers=headers).get_json()
        assert body["status"] == "graded" and body["final"] is True
        r = body["results"]
        assert "timings" not in r and "attempts" not in r
        withheld = r.get("extra_data", {}).get("withheld_tests")
        return [t["name"] for t in r["tests"]], r["score"], r["max_score"], withheld

    # The due date passed: after_due_date shows; hidden never; after_published not yet.
    assert names(S) == (["seen", "late"], 3, 3, 2)
    assert names(OWN) == (["seen", "secret", "late", "published"], 6, 10, None)
    assert names({**S, "X-Auth-User": STAFF})[0] == ["seen", "secret", "late", "published"]
    refused = client.post(f"/api/v1/assignments/{assignment}/publish", headers=S)
    assert refused.status_code == 403 and "id" in refused.get_json()
    ok = client.post(f"/api/v1/assignments/{assignment}/publish", headers=OWN)
    assert ok.status_code == 200 and ok.get_json()["published"] is True
    assert names(S) == (["seen", "late", "published"], 3, 6, 1)


def test_after_due_date_waits_for_the_due_date(redis_url: str) -> None:
    client, store = make(redis_url)
    for due, shown in ((FUTURE, ["seen"]), ("", ["seen"]), (PAST, ["seen", "late"])):
        assignment = upload(client, pycalc(), due_date=due).get_json()["id"]
        body = {"files": [{"name": "calc.py", "content": "x = 1\n"}]}
        token = client.post(
            f"/api/v1/assignments/{assignment}/submissions", json=body, headers=S
        ).get_json()["id"]
        graded(store, token, results(("seen", 1, 1, "visible"), ("late", 1, 1, "after_due_date")))
        got = client.get(f"/api/v1/assignments/{assignment}/submissions/{token}", headers=S)
        assert [t["name"] for t in got.get_json()["results"]["tests"]] == shown, due


def test_a_bundles_tests_take_the_top_level_visibility() -> None:
    student = Audience(staff=False, due_date="", published=False, now=0.0)
    data = results(("a", 1, 1, "visible"), top="hidden")
    data["tests"].append({"name": "b", "score": 5, "max_score": 5})  # no visibility: the top's
    data["score"], data["max_score"] = 6, 6
    shown = shown_results(data, student)
    assert [t["name"] for t in shown["tests"]] == ["a"]
    assert (shown["score"], shown["max_score"], shown["output"]) == (1, 1, "")
    everything = shown_results(data, Audience(True, "", False, 0.0))
    assert (everything["score"], len(everything["tests"])) == (6, 2)


def test_students_read_only_their_own_when_reads_are_owner_only(redis_url: str) -> None:
    client, _ = make(redis_url, owner_only_reads=True)
    assignment = upload(client, pycalc()).get_json()["id"]
    body = {"files": [{"name": "calc.py", "content": "x = 1\n"}]}
    token = client.post(
        f"/api/v1/assignments/{assignment}/submissions", json=body, headers=S
    ).get_json()["id"]
    url = f"/api/v1/assignments/{assignment}/submissions/{token}"
    assert client.get(url, headers=S).status_code == 200
    # The owner of the assignment is staff: it reads every submission to it.
    assert client.get(url, headers=OWN).status_code == 200
    assert client.get(url, headers={"X-Auth-Token": ANOTHER}).status_code == 404


def test_a_callback_url_is_kept_as_for_judging(redis_url: str) -> None:
    client, store = make(redis_url)
    assignment = upload(client, pycalc()).get_json()["id"]
    subs = f"/api/v1/assignments/{assignment}/submissions"
    files = [{"name": "calc.py", "content": "x = 1\n"}]
    body = {"files": files, "callback_url": "https://grades.example.org/hook"}
    token = client.post(subs, json=body, headers=S).get_json()["id"]
    rec = store.get(token)
    assert rec is not None and rec.callback_url == "https://grades.example.org/hook"
    # The workers' guard, as for judging: no internal address literal.
    refused = client.post(
        subs, json={"files": files, "callback_url": "http://127.0.0.1/x"}, headers=S
    )
    assert refused.status_code == 422 and "callback_url" in refused.get_json()


def test_the_openapi_document_lists_the_assignment_endpoints(redis_url: str) -> None:
    client, _ = make(redis_url)
    paths = client.get("/openapi.json").get_json()["paths"]
    assert set(paths["/api/v1/assignments"]) == {"post"}
    assert set(paths["/api/v1/assignments/{id}"]) == {"get"}
    assert set(paths["/api/v1/assignments/{id}/publish"]) == {"post"}
    assert set(paths["/api/v1/assignments/{id}/submissions"]) == {"post"}
    assert set(paths["/api/v1/assignments/{id}/submissions/{token}"]) == {"get"}


def test_no_grading_under_a_minimum_tier_above_container(redis_url: str) -> None:
    client, store = make(redis_url, min_tier="gvisor")
    assignment = upload(client, pycalc()).get_json()["id"]
    body = {"files": [{"name": "calc.py", "content": "x = 1\n"}]}
    r = client.post(f"/api/v1/assignments/{assignment}/submissions", json=body, headers=S)
    assert r.status_code == 422 and "STOCKADE_MIN_TIER" in r.get_json()["assignment"][0]
    assert queued_tokens(store) == []
