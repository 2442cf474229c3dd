"""The native grader on real boxes: tests/assignments' submissions get their known scores."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox.launcher import Launcher
from worker.grading.assignment import Setup, load_assignment, load_directory
from worker.grading.results import Results, validate
from worker.grading.runner import Grader
from worker.grading.setup import image_name
from worker.grading.tree import read_tree

pytestmark = pytest.mark.privileged
ROOT = Path(__file__).parent.parent / "assignments"


_GRADED: dict[tuple[str, str], Results] = {}


def grade(launcher: Launcher, assignment: str, submission: str) -> Results:
    """The submission's results; the first call grades all of the assignment's submissions,
    two at once (each test still in boxes of its own), for every later test to read."""
    if (assignment, submission) not in _GRADED:
        a = load_directory(ROOT / assignment / "assignment")
        grader = Grader(launcher)
        grader.check(a)
        subs = sorted(p.name for p in (ROOT / assignment / "submissions").iterdir())
        root = ROOT / assignment / "submissions"
        with ThreadPoolExecutor(2) as pool:
            done = pool.map(lambda s: grader.grade(a, read_tree(root / s)), subs)
            _GRADED.update(((assignment, s), r) for s, r in zip(subs, done, strict=True))
    results = _GRADED[(assignment, submission)]
    assert validate(results.to_dict()) == []
    assert not results.error, results.error
    return results


def scores(results: Results) -> dict[str, float]:
    return {t.name: t.score for t in results.tests}


PYCALC = {
    "full": {"add": 2, "multiply": 3, "divide": 4, "prints a sum": 1},
    "partial": {"add": 2, "multiply": 0, "divide": 4, "prints a sum": 1},
    "crash": {"add": 2, "multiply": 3, "divide": 0, "prints a sum": 1},
    "loop": {"add": 2, "multiply": 0, "divide": 4, "prints a sum": 1},
    "forge": {"add": 0, "multiply": 0, "divide": 0, "prints a sum": 0},
    "peek": {"add": 2, "multiply": 0, "divide": 4, "prints a sum": 1},
    "conftest": {"add": 0, "multiply": 0, "divide": 0, "prints a sum": 0},
    # pytest.py, stockade_grader.py and a user-site .pth that read the key and forge reports.
    "shadow": {"add": 0, "multiply": 0, "divide": 0, "prints a sum": 0},
}


@pytest.mark.parametrize("submission", sorted(PYCALC))
def test_pycalc_scores(launcher: Launcher, submission: str) -> None:
    results = grade(launcher, "pycalc", submission)
    assert scores(results) == PYCALC[submission]
    assert results.score == sum(PYCALC[submission].values())
    assert results.max_score == 10


def test_pycalc_why(launcher: Launcher) -> None:
    """Each failure says what the host saw."""
    by = {t.name: t for t in grade(launcher, "pycalc", "crash").tests}
    assert "SIGSEGV" in by["divide"].output or "signal" in by["divide"].output
    by = {t.name: t for t in grade(launcher, "pycalc", "loop").tests}
    assert "time limit" in by["multiply"].output.lower()


def test_forged_reports_and_early_exit_score_nothing(launcher: Launcher) -> None:
    """forge/calc.py writes results.json files, prints report lines with guessed keys on
    every descriptor and leaves with os._exit(0) before any test runs."""
    by = {t.name: t for t in grade(launcher, "pycalc", "forge").tests}
    assert "did the program exit early" in by["add"].output
    assert by["add"].visibility == "visible" and by["divide"].visibility == "hidden"


def test_hidden_test_files_stay_out_of_visible_boxes(launcher: Launcher) -> None:
    """peek/calc.py prints every file of its box in a failing visible test."""
    by = {t.name: t for t in grade(launcher, "pycalc", "peek").tests}
    shown = by["multiply"].output
    assert "== check_calc.py" in shown  # the listing really ran
    assert "check_hidden" not in shown and "SECRET-HIDDEN-TEST-MARKER" not in shown


def test_a_students_conftest_is_never_loaded(launcher: Launcher) -> None:
    results = grade(launcher, "pycalc", "conftest")
    assert "conftest.py" in results.output


CSUM = {
    "full": {"small sums": 4, "large sums": 4, "negative numbers": 2},
    "partial": {"small sums": 4, "large sums": 1, "negative numbers": 2},
    "crash": {"small sums": 4, "large sums": 4, "negative numbers": 0},
    "loop": {"small sums": 1, "large sums": 4, "negative numbers": 2},
    "compile_error": {"small sums": 0, "large sums": 0, "negative numbers": 0},
    "forge": {"small sums": 0, "large sums": 0, "negative numbers": 0},
}


@pytest.mark.parametrize("submission", sorted(CSUM))
def test_csum_scores(launcher: Launcher, submission: str) -> None:
    results = grade(launcher, "csum", submission)
    assert scores(results) == CSUM[submission]
    assert results.max_score == 10


def test_csum_feedback(launcher: Launcher) -> None:
    by = {t.name: t for t in grade(launcher, "csum", "compile_error").tests}
    assert "undeclared" in by["small sums"].output
    by = {t.name: t for t in grade(launcher, "csum", "partial").tests}
    assert by["large sums"].output.splitlines() == [
        "case 1: passed",
        "case 2: wrong answer: line 1: expected '4000000000', got '-294967296'",
    ]


J5 = ("pops in reverse (JUnit 5)", "pop gives back (parameterized)")
JSTACK = {
    "full": {"push then pop": 3, "size": 2, "empty stack": 5, J5[0]: 1, J5[1]: 1},
    "partial": {"push then pop": 3, "size": 0, "empty stack": 0, J5[0]: 1, J5[1]: 1},
    "crash": {"push then pop": 3, "size": 2, "empty stack": 0, J5[0]: 1, J5[1]: 1},
    "loop": {"push then pop": 3, "size": 0, "empty stack": 5, J5[0]: 1, J5[1]: 1},
    "forge": {"push then pop": 0, "size": 0, "empty stack": 0, J5[0]: 0, J5[1]: 0},
    "shadow": {"push then pop": 0, "size": 0, "empty stack": 0, J5[0]: 0, J5[1]: 0},
    "peek": {"push then pop": 3, "size": 0, "empty stack": 0, J5[0]: 1, J5[1]: 1},
}


@pytest.mark.parametrize("submission", sorted(JSTACK))
def test_jstack_scores(launcher: Launcher, submission: str) -> None:
    results = grade(launcher, "jstack", submission)
    assert scores(results) == JSTACK[submission]
    assert results.max_score == 12


def test_jstack_hidden_classes_stay_out_of_visible_boxes(launcher: Launcher) -> None:
    by = {t.name: t for t in grade(launcher, "jstack", "peek").tests}
    # JUnit's progress dot may precede the line.
    listing = [
        ln.split("classes: ", 1)[1] for ln in by["size"].output.splitlines() if "classes: " in ln
    ]
    assert listing and "StackTest.class" in listing[0].split()
    assert "Hidden" not in listing[0]


def test_setup_apt_builds_an_image_once_and_the_tests_run_on_it(launcher: Launcher) -> None:
    """pycalc over the python3 image, which has no pytest: [setup] apt brings it, as a layer
    built once; the second prepare finds it by content."""
    plain = load_directory(ROOT / "pycalc" / "assignment")
    wanted = replace(plain, setup=Setup(apt=("python3-pytest",)))
    grader = Grader(launcher, rootfs="image")
    lines: list[str] = []
    ready = grader.prepare(wanted, lines.append)
    assert ready.image == image_name("python3", ("python3-pytest",)) and ready.setup.empty
    again: list[str] = []
    assert grader.prepare(wanted, again.append) == ready
    assert any("cached layer" in line for line in again) and not any(
        "building" in line for line in again
    )
    for submission in ("full", "partial"):
        results = grader.grade(ready, read_tree(ROOT / "pycalc" / "submissions" / submission))
        assert scores(results) == PYCALC[submission]
    # Without the setup, the language's image has no pytest: the runner tests fail.
    bare = grader.grade(plain, read_tree(ROOT / "pycalc" / "submissions" / "full"))
    assert scores(bare)["add"] == 0 and "No module named pytest" in bare.tests[0].output


def test_io_tests_run_the_named_program(launcher: Launcher) -> None:
    """`program` names the submission's file io tests run; its other files come along."""
    text = """
language = "python3"
program = "sol.py"
[[tests]]
name = "sum"
kind = "io"
points = 3
cases = [{ stdin = "2 3\\n", expected = "5\\n" }, { stdin = "-1 1\\n", expected = "0\\n" }]
"""
    a = load_assignment(Path("inline"), {"assignment.toml": text.encode()})
    grader = Grader(launcher)
    grader.check(a)
    sub = {
        "sol.py": b"from helper import add\nprint(add(*map(int, input().split())))\n",
        "helper.py": b"def add(a, b):\n    return a + b if a > 0 else 1\n",
    }
    results = grader.grade(a, sub)
    assert scores(results) == {"sum": 1.5}
    assert results.tests[0].output.splitlines()[0] == "case 1: passed"
    missing = grader.grade(a, {"other.py": b""})
    assert scores(missing) == {"sum": 0} and "has no sol.py" in missing.tests[0].output


GOWC = {
    "full": {"counts words": 3, "tabs and newlines": 1, "empty text": 2},
    "partial": {"counts words": 3, "tabs and newlines": 0, "empty text": 0},
    "crash": {"counts words": 3, "tabs and newlines": 1, "empty text": 0},
    "loop": {"counts words": 3, "tabs and newlines": 0, "empty text": 2},
    # PASS lines and a guessed report printed from init, then os.Exit(0) before any test.
    "forge": {"counts words": 0, "tabs and newlines": 0, "empty text": 0},
    "compile_error": {"counts words": 0, "tabs and newlines": 0, "empty text": 0},
}


@pytest.mark.parametrize("submission", sorted(GOWC))
def test_gowc_scores(launcher: Launcher, submission: str) -> None:
    results = grade(launcher, "gowc", submission)
    assert scores(results) == GOWC[submission]
    assert results.max_score == 6


def test_gowc_feedback(launcher: Launcher) -> None:
    by = {t.name: t for t in grade(launcher, "gowc", "forge").tests}
    assert "did not run to the end" in by["counts words"].output
    by = {t.name: t for t in grade(launcher, "gowc", "full").tests}
    assert "--- PASS: TestTable/tabs" in by["tabs and newlines"].output
    assert "TestZZStockade" not in by["tabs and newlines"].output
    by = {t.name: t for t in grade(launcher, "gowc", "compile_error").tests}
    assert "undefined: missing" in by["counts words"].output
