"""A graded submission as a queued job: the rules a queued one keeps, what run_job stores of a
grade, and results.json cut to the result budget without touching a score."""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile

from tests.unit.test_tasks import FakeStore
from worker.grading.results import Results, ScoredTest
from worker.grading.uploaded import GradeOutcome, SetupLog, UploadedAssignments, fit, setup_wall_s
from worker.jobs.model import Submission
from worker.jobs.rules import InvalidSubmission, decode
from worker.jobs.store import Record
from worker.tasks import run_job

ID = "ab" * 32


def files_zip() -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("calc.py", "x = 1\n")
    return base64.b64encode(buf.getvalue()).decode()


def rules_broken(**fields: object) -> list[str]:
    try:
        decode(json.dumps({**Submission().to_dict(), **fields}))
    except InvalidSubmission as e:
        return e.errors
    return []


def test_a_queued_graded_submission_is_its_files_only() -> None:
    assert rules_broken(assignment=ID, additional_files=files_zip()) == []
    assert rules_broken(assignment="nope", additional_files=files_zip()) == [
        "assignment: must be an assignment id (64 hex digits, POST /api/v1/assignments)"
    ]
    assert rules_broken(assignment=ID) == [
        "additional_files: a graded submission needs its files (a zip)"
    ]
    broken = rules_broken(assignment=ID, additional_files=files_zip(), source_code="x", stdin="1")
    assert broken == [
        "source_code: not allowed with assignment (the assignment sets it)",
        "stdin: not allowed with assignment (the assignment sets it)",
    ]
    wider = rules_broken(assignment=ID, additional_files=files_zip(), cpu_time_limit=9)
    assert wider == ["cpu_time_limit: not allowed with assignment (the assignment sets it)"]


def graded_record() -> Record:
    sub = Submission(assignment=ID, additional_files=files_zip())
    return Record("tok", sub, 1, None, "", time.time(), None, None, 0, None, {})


def test_run_job_stores_results_json_and_why_one_was_not_graded() -> None:
    results = Results(tests=(ScoredTest("1", "add", 1.0, 2.0, "visible", "off by one"),))
    store = FakeStore(graded_record())
    assert run_job("tok", store, lambda s: (GradeOutcome(results.to_dict()), {"run_s": 1.0}), 3)
    status, stored, message = store.finished[0]
    assert (status, message) == (3, "")
    assert stored is not None and stored["tests"] == results.to_dict()["tests"]
    assert stored["score"] == 1.0 and stored["timings"]["run_s"] == 1.0

    store = FakeStore(graded_record())
    failed = GradeOutcome.failed("assignment: expired")
    assert run_job("tok", store, lambda s: (failed, {}), 3) == 13
    status, stored, message = store.finished[0]
    assert (status, message) == (13, "assignment: expired")
    assert stored is not None and stored["extra_data"] == {"error": "assignment: expired"}


def test_fit_cuts_outputs_never_scores() -> None:
    tests = tuple(
        ScoredTest(str(i), f"t{i}", float(i % 2), 1.0, "visible", "x" * 8000) for i in range(40)
    )
    data = Results(tests=tests).to_dict()
    assert len(json.dumps(data)) > 300_000
    cut = fit(data, 64 * 1024)
    assert len(json.dumps(cut)) <= 64 * 1024
    assert [t["score"] for t in cut["tests"]] == [t["score"] for t in data["tests"]]
    assert cut["score"] == data["score"] == 20
    assert all(t["output"].startswith("x") and "bytes cut" in t["output"] for t in cut["tests"])
    small = Results(tests=tests[:2]).to_dict()
    assert fit(small, 64 * 1024) == small


def test_a_worker_under_a_minimum_tier_grades_nothing() -> None:
    graders = UploadedAssignments(None, {}, None, 1, 1, min_tier="microvm")  # type: ignore[arg-type]
    outcome = graders.grade(graded_record().submission)
    assert outcome.judge0_status() == 13 and "STOCKADE_MIN_TIER is microvm" in outcome.message


def test_a_setup_box_for_a_job_fits_the_visibility_timeout() -> None:
    # The default 900 s leaves 300 s of setup beside a bundle's 600 s run.
    assert setup_wall_s(900) == 300
    assert setup_wall_s(600 + 1200) == 1200
    # Never above a setup box's own limit, never under a minute.
    assert setup_wall_s(100_000) == 1800
    assert setup_wall_s(30) == 60


def test_a_failed_setup_is_not_graded_with_its_output_above_why() -> None:
    lines = SetupLog(keep=3)
    for n in range(5):
        lines(f"      | line {n}\n")
    assert lines.tail() == "line 2\nline 3\nline 4"
    why = "setup.sh: setup: the script ended with status 3 (its output is above)"
    outcome = GradeOutcome.failed(why, lines.tail())
    assert outcome.judge0_status() == 13 and outcome.message == why
    assert outcome.results["output"] == f"line 2\nline 3\nline 4\ncould not be graded: {why}"
    assert outcome.results["score"] == 0 and outcome.results["extra_data"]["error"] == why


def test_a_long_setup_log_keeps_its_end_and_the_reason() -> None:
    log = "\n".join(f"{n:05d} " + "x" * 200 for n in range(40))
    outcome = GradeOutcome.failed("setup.pip: setup: the script ended with status 1", log)
    out = outcome.results["output"]
    assert out.startswith("[...]\n") and "00039 " in out and "00000 " not in out
    assert out.endswith("could not be graded: setup.pip: setup: the script ended with status 1")
