"""Grading through the API on the real stack: tests/assignments/pycalc uploaded, a full-marks and
a partial submission graded by a worker with their exact scores, and the hidden test left out of
what the student's token sees until the owner's shows it."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import Stack

PYCALC = Path(__file__).resolve().parents[1] / "assignments" / "pycalc"
OWNER, STUDENT = "course-staff-e2e", "student-e2e"


def zipped(directory: Path) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(directory).as_posix())
    return base64.b64encode(buf.getvalue()).decode()


def scores(body: dict[str, Any]) -> dict[str, float]:
    return {t["name"]: t["score"] for t in body["results"]["tests"]}


def test_pycalc_graded_through_the_api(stack: Stack) -> None:
    url = stack.start_api("api-grading", STOCKADE_AUTH_TOKENS=f"{OWNER},{STUDENT}")
    staff = httpx.Client(base_url=url, timeout=120, headers={"X-Auth-Token": OWNER})
    student = httpx.Client(base_url=url, timeout=120, headers={"X-Auth-Token": STUDENT})
    with staff, student:
        r = staff.post("/api/v1/assignments", json={"assignment": zipped(PYCALC / "assignment")})
        assert r.status_code in (200, 201), r.text
        assignment = r.json()["id"]
        shown = student.get(f"/api/v1/assignments/{assignment}").json()
        assert [t["name"] for t in shown["tests"]] == ["add", "multiply", "prints a sum"]

        full = [
            {
                "name": "calc.py",
                "content": (PYCALC / "submissions" / "full" / "calc.py").read_text(),
            }
        ]
        partial = (PYCALC / "submissions" / "partial" / "calc.py").read_bytes()
        zip_buf = io.BytesIO()
        with zipfile.ZipFile(zip_buf, "w") as zf:
            zf.writestr("calc.py", partial)
        subs = f"/api/v1/assignments/{assignment}/submissions"
        # One waits for its grade; the other is queued and read when graded.
        done = student.post(subs, params={"wait": "true"}, json={"files": full})
        assert done.status_code == 201, done.text
        queued = student.post(subs, json={"zip": base64.b64encode(zip_buf.getvalue()).decode()})
        assert queued.status_code == 201, queued.text
        token = queued.json()["id"]
        later = student.get(f"{subs}/{token}", params={"wait": "true"}).json()

        full_body = done.json()
        assert full_body["status"] == "graded", full_body
        # The student sees the visible tests and their total; "divide" (hidden, 4) is left out.
        assert scores(full_body) == {"add": 2, "multiply": 3, "prints a sum": 1}
        assert (full_body["results"]["score"], full_body["results"]["max_score"]) == (6, 6)
        assert full_body["results"]["extra_data"]["withheld_tests"] == 1
        assert later["status"] == "graded", later
        assert scores(later) == {"add": 2, "multiply": 0, "prints a sum": 1}
        assert (later["results"]["score"], later["results"]["max_score"]) == (3, 6)
        assert all("divide" not in t["output"] for t in later["results"]["tests"])

        # The owner's token sees every test and the whole score.
        whole = staff.get(f"{subs}/{full_body['id']}").json()["results"]
        assert scores({"results": whole}) == {
            "add": 2,
            "multiply": 3,
            "divide": 4,
            "prints a sum": 1,
        }
        assert (whole["score"], whole["max_score"]) == (10, 10)
        whole = staff.get(f"{subs}/{token}").json()["results"]
        assert scores({"results": whole}) == {
            "add": 2,
            "multiply": 0,
            "divide": 4,
            "prints a sum": 1,
        }
        assert (whole["score"], whole["max_score"]) == (7, 10)


GSBUNDLE = PYCALC.parent / "gsbundle"


def test_a_gradescope_bundle_graded_through_the_api(stack: Stack) -> None:
    url = stack.start_api("api-bundle", STOCKADE_AUTH_TOKENS=f"{OWNER},{STUDENT}")
    staff = httpx.Client(base_url=url, timeout=120, headers={"X-Auth-Token": OWNER})
    student = httpx.Client(base_url=url, timeout=120, headers={"X-Auth-Token": STUDENT})
    with staff, student:
        r = staff.post("/api/v1/assignments", json={"assignment": zipped(GSBUNDLE / "bundle")})
        assert r.status_code in (200, 201), r.text
        assert r.json()["format"] == "gradescope"
        subs = f"/api/v1/assignments/{r.json()['id']}/submissions"
        got = {}
        for name in ("full", "partial", "crash"):
            code = (GSBUNDLE / "submissions" / name / "stats.py").read_text()
            files = [{"name": "stats.py", "content": code}]
            done = student.post(subs, params={"wait": "true"}, json={"files": files})
            assert done.status_code == 201, done.text
            got[name] = done.json()
        # The bundle's own results.json: "mean of nothing" (3 points) is hidden from students.
        assert scores(got["full"]) == {"mean of 1 2 3": 2}
        assert scores(got["partial"]) == {"mean of 1 2 3": 2}
        whole = {n: staff.get(f"{subs}/{got[n]['id']}").json()["results"] for n in got}
        assert [whole[n]["score"] for n in ("full", "partial")] == [5, 2]
        assert scores({"results": whole["partial"]}) == {"mean of 1 2 3": 2, "mean of nothing": 0}
        # A submission that kills the grader before it writes results.json is not graded.
        crash = got["crash"]
        assert crash["status"] == "not graded", crash
        assert "left no /autograder/results/results.json" in crash["message"]
        assert crash["results"]["tests"] == []
