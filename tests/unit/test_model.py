"""The submission model: JSON round trip, its rules, verdicts and Judge0's status ids."""

from __future__ import annotations

import signal

import pytest

from worker.jobs.model import (
    CaseResult,
    CheckerSpec,
    CompileStats,
    JudgeResult,
    Program,
    Submission,
    TestCase,
    Verdict,
    aggregate,
    judge0_status,
)
from worker.jobs.rules import validate


def test_json_round_trip_keeps_every_field() -> None:
    sub = Submission(
        source_code="print(1)",
        language_id=71,
        test_cases=(TestCase("1\n", "1\n", 2.5, "one"), TestCase("2\n", None)),
        checker=CheckerSpec("custom", program=Program("src", 50, "icpc", ("x",))),
        interactor=Program("int", 71),
        memory_limit=64000,
    )
    assert Submission.from_json(sub.to_json()) == sub


def test_judge0_single_case_from_stdin_and_expected_output() -> None:
    sub = Submission.from_dict(
        {"source_code": "x", "language_id": 71, "stdin": "5", "expected_output": "5"}
    )
    assert sub.cases() == (TestCase("5", "5", 1.0, "1"),)


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError, match="bogus"):
        Submission.from_dict({"bogus": 1})


def test_validate_names_each_field() -> None:
    sub = Submission(
        language_id=71,
        cpu_time_limit=99.0,
        memory_limit=1,
        checker=CheckerSpec("fuzzy"),
        test_cases=(TestCase(points=-1.0),),
    )
    errors = validate(sub)
    fields = {e.split(":")[0] for e in errors}
    assert {"cpu_time_limit", "memory_limit", "checker.kind", "test_cases[0].points"} <= fields
    assert validate(Submission(language_id=71)) == []


def test_custom_checker_needs_a_program() -> None:
    assert any("checker.program" in e for e in validate(Submission(checker=CheckerSpec("custom"))))


@pytest.mark.parametrize(
    ("verdict", "sig", "exec_format", "status"),
    [
        (Verdict.AC, None, False, 3),
        (Verdict.WA, None, False, 4),
        (Verdict.TLE, None, False, 5),
        (Verdict.CE, None, False, 6),
        (Verdict.RE, signal.SIGSEGV, False, 7),
        (Verdict.RE, signal.SIGXFSZ, False, 8),
        (Verdict.RE, signal.SIGFPE, False, 9),
        (Verdict.RE, signal.SIGABRT, False, 10),
        (Verdict.RE, None, False, 11),
        (Verdict.RE, signal.SIGKILL, False, 12),
        (Verdict.IE, None, False, 13),
        (Verdict.RE, None, True, 14),
        (Verdict.OLE, None, False, 8),
        (Verdict.MLE, None, False, 12),
    ],
)
def test_judge0_status_ids(
    verdict: Verdict, sig: int | None, exec_format: bool, status: int
) -> None:
    assert judge0_status(verdict, sig, exec_format) == status


def test_aggregate_first_non_ac_in_order_and_points() -> None:
    cases = [
        CaseResult("1", Verdict.AC, 0.1, 10, points=2.0),
        CaseResult("2", Verdict.TLE, 1.0, 20),
        CaseResult("3", Verdict.WA, 0.1, 30),
        CaseResult("4", Verdict.AC, 0.2, 5, points=3.0),
    ]
    r = aggregate(cases, 10.0)
    assert (r.verdict, r.score, r.max_score) == (Verdict.TLE, 5.0, 10.0)
    assert (r.time, r.memory, r.judge0_status()) == (1.0, 30, 5)
    d = r.to_dict()
    assert d["verdict"] == "TLE" and d["cases"][1]["status"]["id"] == 5


def test_all_accepted_and_failed_builds() -> None:
    assert aggregate([CaseResult("1", Verdict.AC, 0, 0, points=1)], 1).verdict is Verdict.AC
    ce = JudgeResult.failed(Verdict.CE, "main.c:1: error")
    assert (ce.verdict, ce.compile_output, ce.judge0_status()) == (Verdict.CE, "main.c:1: error", 6)
    assert JudgeResult.failed(Verdict.IE, "x").judge0_status() == 13


def test_source_name_and_compile_limits_rules() -> None:
    good = Submission(source_name="src/Main.java", compile_cpu_time_limit=1.5)
    assert validate(good) == []
    for name in (
        "../x.py",
        "/abs.py",
        "a/../b.py",
        "-rf.py",
        "a b.py",
        ".hidden",
        "a//b",
        "x" * 300,
    ):
        errors = validate(Submission(source_name=name))
        assert [e.split(":")[0] for e in errors] == ["source_name"], name
    for field in ("compile_cpu_time_limit", "compile_wall_time_limit", "compile_memory_limit"):
        errors = validate(Submission(**{field: -1}))
        assert errors and errors[0].startswith(f"{field}: must be a number >= 0")
        errors = validate(Submission(**{field: 0.001}))
        assert errors and errors[0].startswith(f"{field}: must be 0 (the language's own) or at")


def test_compile_stats_round_trip_in_the_result() -> None:
    stats = CompileStats(0.5, 0.75, 1 << 20, 1, None, "RE")
    d = JudgeResult.failed(Verdict.CE, "boom", stats).to_dict()
    want = {"time": 0.5, "wall_time": 0.75, "memory": 1 << 20, "exit_code": 1, "signal": None}
    assert d["compile"] == {**want, "status": "RE"}
    assert "compile" not in JudgeResult.failed(Verdict.IE, "x").to_dict()
