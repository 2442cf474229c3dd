"""Problem packages through the native API: uploaded once (base64 zip) and checked as archives
and as packages, shown by id, submitted against by id; owners as for submissions. The Flask
test client on a real redis-server, no worker."""

from __future__ import annotations

import base64
import io
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from service import create_app
from service.config import Config
from tests.unit.redis_server import redis_url
from tests.unit.service_app import queued_tokens
from tests.unit.test_hostile_inputs import _zip as zip_entries
from worker.jobs import problems
from worker.jobs.problems import unpack
from worker.jobs.store import Store

__all__ = ["redis_url"]

DIVISION = Path(__file__).resolve().parents[1] / "problems" / "division"
ALICE, BOB = "alice-token-1", "bob-token-2"
A, B = {"X-Auth-Token": ALICE}, {"X-Auth-Token": BOB}
PY = 71  # Python 3, a language without a compile step the tests need not build


def make(redis_url: str, **overrides: Any) -> tuple[FlaskClient, Store]:
    config = Config(redis_url=redis_url, redis_prefix="t:", wait_timeout_s=0.2)
    app = create_app(config.replace(**overrides))
    return app.test_client(), app.extensions["stockade"].store


def zip_dir(directory: Path, top: str = "", skip: str = "submissions") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory)
            if path.is_file() and rel.parts[0] != skip:
                zf.write(path, f"{top}{rel.as_posix()}")
    return buf.getvalue()


def b64(data: bytes) -> dict[str, str]:
    return {"package": base64.b64encode(data).decode()}


def with_division(extra: list[tuple[str, bytes, int | None]]) -> bytes:
    """The division package with hostile entries added."""
    files = [(n, c, None) for n, c in unpack(zip_dir(DIVISION), 8 << 20).items()]
    return zip_entries(files + extra)


def test_upload_show_and_the_same_package_twice_is_one_problem(redis_url: str) -> None:
    client, _ = make(redis_url)
    r = client.post("/api/v1/problems", json=b64(zip_dir(DIVISION)))
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    problem = body["id"]
    assert len(problem) == 64 and body["name"] == "Division"
    # Zipped again in a folder of its own: other bytes, the same files, the same problem.
    again = client.post("/api/v1/problems", json=b64(zip_dir(DIVISION, top="division/")))
    assert again.status_code == 200 and again.get_json()["id"] == problem
    shown = client.get(f"/api/v1/problems/{problem}").get_json()
    assert shown["time_limit_s"] == 1 and shown["memory_mib"] == 64
    assert shown["format"] == "2023-07" and shown["scoring"] is True
    assert shown["cases"] == sum(1 for _ in (DIVISION / "data").rglob("*.in"))
    assert {"name": "secret/g1", "cases": 2} in shown["groups"]
    missing = client.get("/api/v1/problems/" + "0" * 64)
    assert missing.status_code == 404 and "id" in missing.get_json()


def test_a_submission_against_a_problem_is_queued_with_its_id(redis_url: str) -> None:
    client, store = make(redis_url)
    problem = client.post("/api/v1/problems", json=b64(zip_dir(DIVISION))).get_json()["id"]
    sub = {"source_code": "print(1)", "language_id": PY, "problem": problem}
    r = client.post("/api/v1/submissions", json=sub)
    assert r.status_code == 201, r.get_json()
    token = r.get_json()["id"]
    assert queued_tokens(store) == [token]
    rec = store.get(token)
    assert rec is not None and rec.submission.problem == problem
    assert client.get(f"/api/v1/submissions/{token}").get_json()["problem"] == problem


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"test_cases": [{"input": "1", "expected_output": "1"}]}, "test_cases"),
        ({"stdin": "1"}, "stdin"),
        ({"cpu_time_limit": 2}, "cpu_time_limit"),
        ({"checker": {"kind": "token"}}, "checker"),
    ],
)
def test_a_problem_brings_its_own_cases_and_limits(
    redis_url: str, extra: dict[str, Any], field: str
) -> None:
    client, _ = make(redis_url)
    problem = client.post("/api/v1/problems", json=b64(zip_dir(DIVISION))).get_json()["id"]
    sub = {"source_code": "print(1)", "language_id": PY, "problem": problem, **extra}
    r = client.post("/api/v1/submissions", json=sub)
    assert r.status_code == 422
    assert "not allowed with problem" in r.get_json()[field][0]


def test_an_unknown_problem_is_refused_naming_the_field(redis_url: str) -> None:
    client, store = make(redis_url)
    for problem in ("0" * 64, "not-a-digest"):
        sub = {"source_code": "print(1)", "language_id": PY, "problem": problem}
        r = client.post("/api/v1/submissions", json=sub)
        assert r.status_code == 422 and "problem" in r.get_json(), r.get_json()
    assert queued_tokens(store) == []


def test_judge0_ignores_problem(redis_url: str) -> None:
    client, store = make(redis_url)
    sub = {"source_code": "print(1)", "language_id": PY, "problem": "0" * 64}
    token = client.post("/submissions", json=sub).get_json()["token"]
    rec = store.get(token)
    assert rec is not None and rec.submission.problem == ""


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        (("../evil", b"x", None), "zip slip"),
        (("data/secret/link.in", b"/etc/passwd", stat.S_IFLNK | 0o777), "symbolic link"),
        (("data/secret/zeros.in", b"\0" * (8 << 20), None), "zip bomb"),
    ],
)
def test_hostile_archives_are_refused(
    redis_url: str, entry: tuple[str, bytes, int | None], rule: str
) -> None:
    client, store = make(redis_url)
    r = client.post("/api/v1/problems", json=b64(with_division([entry])))
    assert r.status_code == 422
    assert rule in r.get_json()["package"][0]
    assert not list(store.redis.scan_iter("t:problem:*"))


def test_over_the_size_cap_is_413_naming_the_setting(redis_url: str) -> None:
    client, _ = make(redis_url, max_package_bytes=2048)
    r = client.post("/api/v1/problems", json=b64(zip_dir(DIVISION)))
    assert r.status_code == 413
    assert "STOCKADE_MAX_PACKAGE_BYTES" in r.get_json()["package"][0]


@pytest.mark.parametrize(
    ("replace", "rule"),
    [
        (
            b"name: X\nlimits:\n  time_limit: -1\n",
            "problem.yaml: limits.time_limit: the time limit must be",
        ),
        (b"name: X\n", "must state its time limit"),
        (b"problem_format_version: 9\n", "problem_format_version"),
    ],
)
def test_a_malformed_package_is_422_naming_the_file(
    redis_url: str, replace: bytes, rule: str
) -> None:
    client, _ = make(redis_url)
    files = unpack(zip_dir(DIVISION), 8 << 20)
    files["problem.yaml"] = replace
    r = client.post(
        "/api/v1/problems", json=b64(zip_entries([(n, c, None) for n, c in files.items()]))
    )
    assert r.status_code == 422
    assert rule in r.get_json()["package"][0]


def test_no_problem_yaml_is_422(redis_url: str) -> None:
    client, _ = make(redis_url)
    r = client.post(
        "/api/v1/problems", json=b64(zip_entries([("a/x", b"", None), ("b/y", b"", None)]))
    )
    assert r.status_code == 422 and "problem.yaml" in r.get_json()["package"][0]


def test_owner_only_reads_hold_for_problems(redis_url: str) -> None:
    client, _ = make(redis_url, auth_tokens=(ALICE, BOB), owner_only_reads=True)
    assert client.post("/api/v1/problems", json=b64(zip_dir(DIVISION))).status_code == 401
    problem = client.post("/api/v1/problems", json=b64(zip_dir(DIVISION)), headers=A)
    problem_id = problem.get_json()["id"]
    assert client.get(f"/api/v1/problems/{problem_id}", headers=A).status_code == 200
    assert client.get(f"/api/v1/problems/{problem_id}", headers=B).status_code == 404
    sub = {"source_code": "print(1)", "language_id": PY, "problem": problem_id}
    refused = client.post("/api/v1/submissions", json=sub, headers=B)
    assert refused.status_code == 422 and "another token" in refused.get_json()["problem"][0]
    # Bob uploading the same files proves he holds them: the problem is his too.
    client.post("/api/v1/problems", json=b64(zip_dir(DIVISION)), headers=B)
    assert client.post("/api/v1/submissions", json=sub, headers=B).status_code == 201


def test_the_openapi_document_lists_the_problem_endpoints(redis_url: str) -> None:
    client, _ = make(redis_url)
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "/api/v1/problems" in paths and "/api/v1/problems/{id}" in paths


def test_a_client_may_keep_only_its_cap_of_problems(redis_url: str) -> None:
    client, _ = make(redis_url, max_problems_per_client=1)
    first = client.post("/api/v1/problems", json=b64(zip_dir(DIVISION)))
    assert first.status_code == 201
    # The same problem again is no new one; another is over the cap.
    assert client.post("/api/v1/problems", json=b64(zip_dir(DIVISION))).status_code == 200
    files = unpack(zip_dir(DIVISION), 8 << 20)
    files["data/sample/2.in"], files["data/sample/2.ans"] = b"1 1\n", b"1\n"
    other = client.post(
        "/api/v1/problems", json=b64(zip_entries([(n, c, None) for n, c in files.items()]))
    )
    assert other.status_code == 429
    assert "STOCKADE_MAX_PROBLEMS_PER_CLIENT" in other.get_json()["package"][0]


def test_a_data_file_the_judge_would_not_read_is_refused_at_upload(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = make(redis_url)
    files = unpack(zip_dir(DIVISION), 8 << 20)
    cap = max(len(c) for c in files.values())
    monkeypatch.setattr(problems, "MAX_DATA_BYTES", cap)  # the loader's 64 MiB, made small
    files["data/secret/g1/a.in"] = b"1" * (cap + 1)
    body = b64(zip_entries([(n, c, None) for n, c in files.items()]))
    r = client.post("/api/v1/problems", json=body)
    assert r.status_code == 422
    assert r.get_json()["package"] == [f"data/secret/g1/a.in: over {cap} bytes"]
