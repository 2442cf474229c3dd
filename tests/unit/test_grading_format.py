"""assignment.toml parsing, results.json validation and the harness report's reading."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from worker.grading import harness
from worker.grading.assignment import AssignmentError, load_assignment, load_directory
from worker.grading.results import Results, ScoredTest, validate

ROOT = Path(__file__).parent.parent / "assignments"


def load(text: str, files: dict[str, bytes] | None = None) -> object:
    return load_assignment(Path("a"), {"assignment.toml": text.encode(), **(files or {})})


def test_the_example_assignments_load() -> None:
    py = load_directory(ROOT / "pycalc" / "assignment")
    assert [t.kind for t in py.tests] == ["pytest", "pytest", "unittest", "command"]
    assert py.max_score == 10 and py.tests[2].own_files == ("check_hidden.py",)
    c = load_directory(ROOT / "csum" / "assignment")
    assert [c.weight for c in c.tests[0].cases] == [1, 1, 2]
    assert c.tests[0].cases[2].expected == b"5050\n"
    assert c.tests[0].limits.cpu_time_s == 1 and c.tests[0].limits.wall_time_s == 2


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[tests]]\nkind = "io"', "language: is required"),
        ('language = "c"\n[[tests]]\nkind = "junk"', "tests[0].kind: must be one of"),
        ('language = "c"\n[[tests]]\nkind = "pytest"', "tests[0].id: a pytest test needs"),
        ('language = "c"\n[[tests]]\nkind = "command"\ncommand = []', "tests[0].command"),
        ('language = "c"\n[[tests]]\nkind = "io"', "tests[0].cases: an io test needs"),
        (
            'language = "c"\n[[tests]]\nkind = "io"\ncases = [{stdin = "1"}]',
            "tests[0].cases[0].expected: is required",
        ),
        (
            'language = "c"\n[[tests]]\nkind = "io"\ncases = [{expected_file = "x"}]',
            "tests[0].cases[0].expected_file: no file 'x'",
        ),
        (
            'language = "c"\n[[tests]]\nkind = "io"\ncases = [{expected = "1", weight = 0}]',
            "tests[0].cases[0].weight: must be a number > 0",
        ),
        ('language = "c"\n[[tests]]\nkind = "command"\ncommand = ["x"]\npoints = -1', "points"),
        (
            'language = "c"\n[[tests]]\nkind = "command"\ncommand = ["x"]\nvisibility = "secret"',
            "tests[0].visibility: must be one of visible, hidden, after_due_date, after_published",
        ),
        ('language = "c"\n[limits]\nmemory = "lots"\n[[tests]]', "limits.memory"),
        ('language = "c"\ncolour = 1\n[[tests]]', "colour: unknown field"),
        ('language = "go"\n[[tests]]\nkind = "go"\nid = "Count"', "must be a go test's name"),
        ('language = "c"\nprogram = "../x.c"\n[[tests]]', "program: must be a relative path"),
        (
            'language = "c"\n[setup]\napt = ["gcc; rm -rf /"]\n[[tests]]',
            "setup.apt: 'gcc; rm -rf /' is not a Debian package name",
        ),
        (
            'language = "c"\n[[tests]]\nname = "a"\nkind = "command"\ncommand = ["x"]\n'
            '[[tests]]\nname = "a"\nkind = "command"\ncommand = ["y"]',
            "test names must be unique",
        ),
    ],
)
def test_format_errors_name_the_field(toml: str, message: str) -> None:
    tomllib.loads(toml)  # the cases are valid TOML: the format itself refuses them
    with pytest.raises(AssignmentError, match=r"assignment\.toml") as e:
        load(toml)
    assert message in str(e.value)


def test_results_shape_is_gradescopes() -> None:
    r = Results(
        tests=(
            ScoredTest("1", "a", 2.0, 2.0, "visible", "ok"),
            ScoredTest("2", "b", 0.5, 3.0, "hidden", "x" * 10000),
        ),
        visibility="after_due_date",
    )
    d = r.to_dict()
    assert validate(d) == []
    assert (d["score"], d["max_score"], d["visibility"]) == (2.5, 5.0, "after_due_date")
    assert [t["status"] for t in d["tests"]] == ["passed", "failed"]
    assert set(d["tests"][0]) == {
        "name",
        "number",
        "score",
        "max_score",
        "status",
        "output",
        "visibility",
    }
    assert len(d["tests"][1]["output"]) < 8300  # clipped


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ([], "results.json: must be a JSON object"),
        ({"tests": [{"name": "a"}]}, "tests[0]: needs a score or a status"),
        ({"score": "10"}, "score: must be a finite number"),
        ({"score": 1, "tests": [{"score": 1, "status": "ok"}]}, "tests[0].status"),
        ({"score": 1, "visibility": "nobody"}, "visibility: must be one of"),
        ({"score": 1, "scroe": 2}, "scroe: unknown field"),
        ({"tests": {}}, "tests: must be a list"),
        ({}, "score: required when there are no tests"),
    ],
)
def test_results_validation_says_what_is_wrong(data: object, error: str) -> None:
    assert any(error in p for p in validate(data)), validate(data)


def _report(key: str, outcomes: list[list[str]], exit_status: int = 0) -> bytes:
    line = json.dumps({"key": key, "exit": exit_status, "outcomes": outcomes})
    return f"some output\n{harness.MARK}{line}\n".encode()


def test_report_pass_needs_key_exit_and_the_test() -> None:
    ok = [["t.py::test_a", "call", "passed"]]
    judge = harness.judge_report
    assert judge(_report("k", ok), 0, "k", "t.py::test_a").passed
    assert judge(_report("k", ok), 0, "k", "t.py").passed  # a file holds the test
    assert judge(_report("k", [["t.py::test_a[1]", "call", "passed"]]), 0, "k", "t.py::test_a")
    wrong_key = judge(_report("guess", ok), 0, "k", "t.py::test_a")
    assert not wrong_key.passed and "exit early" in wrong_key.reason
    assert not judge(_report("k", ok), 1, "k", "t.py::test_a").passed
    assert not judge(_report("k", ok, 1), 0, "k", "t.py::test_a").passed
    assert not judge(_report("k", ok) * 2, 0, "k", "t.py::test_a").passed
    other = judge(_report("k", ok), 0, "k", "t.py::test_b")
    assert not other.passed and "no test named" in other.reason
    mixed = [*ok, ["t.py::test_a", "teardown", "error"]]
    assert not judge(_report("k", mixed), 0, "k", "t.py::test_a").passed
    assert judge(_report("k", ok), 0, "k", "t.py::test_a").output == "some output"
    dotted = [["m.C.test_x", "call", "passed"]]
    assert judge(_report("k", dotted), 0, "k", "m.C", "unittest").passed
    assert not judge(_report("k", dotted), 0, "k", "m.Cx", "unittest").passed
    hashed = [["pkg.T#testA", "call", "passed"]]
    assert judge(_report("k", hashed), 0, "k", "pkg.T", "junit").passed
    assert not judge(_report("k", hashed), 0, "k", "pkg.T#testB", "junit").passed
    assert judge(_report("k", hashed), 0, "k", "pkg.T#testA(int)", "junit").passed
