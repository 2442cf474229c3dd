"""ICPC problem packages in tests/problems: every submission gets its folder's verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from worker.problems import judge_problem, language_for, load_problem, parse_simple_yaml

pytestmark = pytest.mark.privileged
PROBLEMS = Path(__file__).resolve().parent.parent / "problems"
EXPECTED = {
    "accepted": "AC",
    "wrong_answer": "WA",
    "time_limit_exceeded": "TLE",
    "run_time_error": "RE",
}
SUBMISSIONS = sorted(PROBLEMS.glob("*/submissions/*/*"))


@pytest.fixture(scope="module")
def judge(launcher: Any) -> Iterator[Any]:
    from worker.judge import Judge

    yield Judge(launcher, build_cache={})


def _id(path: Path) -> str:
    return f"{path.parts[-4]}-{path.parent.name}-{path.name}"


@pytest.mark.parametrize("path", SUBMISSIONS, ids=[_id(p) for p in SUBMISSIONS])
def test_submission(judge: Any, path: Path) -> None:
    problem_dir = path.parents[2]
    lang_id = language_for(judge.languages, path.name)
    result = judge_problem(judge, problem_dir, path.read_text(), lang_id)
    cases = [(c.name, c.verdict.value, c.message[:80]) for c in result.cases]
    assert result.verdict.value == EXPECTED[path.parent.name], (result.message, cases)
    assert len(result.cases) == len(load_problem(problem_dir, judge.languages).cases)


def test_packages_are_read_as_written(judge: Any) -> None:
    hypot = load_problem(PROBLEMS / "hypot", judge.languages)
    assert hypot.time_limit_s == 1.0 and hypot.checker.kind == "custom"
    assert hypot.checker.program is not None and hypot.checker.program.convention == "icpc"
    assert [c.name for c in hypot.cases] == ["sample/1", "secret/01-mixed", "secret/02-int"]
    guess = load_problem(PROBLEMS / "guess", judge.languages)
    assert guess.interactor is not None and guess.time_limit_s == 1.0
    assert all(s.parent.name in EXPECTED for s in SUBMISSIONS)
    assert {p.parts[-4] for p in SUBMISSIONS} == {"hypot", "guess"}
    for problem in ("hypot", "guess"):
        found = {p.parent.name for p in SUBMISSIONS if p.parts[-4] == problem}
        assert found == set(EXPECTED), problem


def test_simple_yaml_reader() -> None:
    text = (
        "name: 'A B'\nvalidation: custom interactive\nlimits:\n  time_limit: 2 # s\n  memory: 512\n"
    )
    assert parse_simple_yaml(text) == {
        "name": "A B",
        "validation": "custom interactive",
        "limits": {"time_limit": 2, "memory": 512},
    }


def test_cli_json() -> None:
    sub = PROBLEMS / "hypot" / "submissions" / "wrong_answer" / "rounded.py"
    cmd = [
        sys.executable,
        "-m",
        "service.cli",
        "judge",
        str(PROBLEMS / "hypot"),
        str(sub),
        "--json",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    out = json.loads(p.stdout)
    assert out["verdict"] == "WA"
    assert out["cases"][0]["name"] == "sample/1"
    assert set(out["cases"][0]) >= {"name", "verdict", "time", "memory"}


def test_cli_table() -> None:
    sub = PROBLEMS / "guess" / "submissions" / "accepted" / "binary.py"
    cmd = [sys.executable, "-m", "service.cli", "judge", str(PROBLEMS / "guess"), str(sub)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "secret/n777" in p.stdout and p.stdout.rstrip().endswith("verdict: AC (5/5)")
