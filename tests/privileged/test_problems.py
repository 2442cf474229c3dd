"""The problem packages in tests/problems, each verified by `stockade problem verify`: every
submission gets the verdict its folder names, every input passes the input validators."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from worker.jobs.languages import load_languages
from worker.problems.verify import Report, verify

pytestmark = pytest.mark.privileged
PROBLEMS = Path(__file__).resolve().parent.parent / "problems"
PACKAGES = sorted(p.name for p in PROBLEMS.iterdir() if (p / "submissions").is_dir())
FOLDERS = {"accepted", "wrong_answer", "time_limit_exceeded", "run_time_error"}
_REPORTS: dict[str, Report] = {}


def _report(launcher: Any, name: str) -> Report:
    if name not in _REPORTS:
        _REPORTS[name] = verify(launcher, load_languages(), PROBLEMS / name, 2048, jobs=2)
    return _REPORTS[name]


def _row(report: Report, submission: str) -> Any:
    return next(r for r in report.rows if r.submission == f"submissions/{submission}")


@pytest.mark.parametrize("name", PACKAGES)
def test_package_verifies(launcher: Any, name: str) -> None:
    report = _report(launcher, name)
    bad = [(r.submission, r.expected, r.result.verdict.value, r.result.message, r.note)
           for r in report.rows if not r.ok]  # fmt: skip
    assert not bad and not report.input_failures, (bad, report.input_failures)
    folders = {Path(r.submission).parts[1] for r in report.rows}
    assert folders >= FOLDERS, name


def test_modsum_flags_feedback_languages(launcher: Any) -> None:
    """Legacy format: a two-file C++ validator (.cc + .h) gets problem.yaml's and
    testdata.yaml's flags and writes judgemessage.txt; Java class names, a package
    declaration, a directory submission, OCaml's Str, a Python syntax error as CE."""
    report = _report(launcher, "modsum")
    assert (report.time_limit_s, report.time_source) == (2.0, "domjudge-problem.ini")
    assert report.inputs_checked == 3
    assert _row(report, "accepted/lastdigit.py").result.verdict.value == "AC"
    assert "modulo 1000000007" in _row(report, "wrong_answer/off.py").result.message
    for sub in ("Different.java", "Packaged.java", "multi", "words.ml", "sum.cc"):
        assert _row(report, f"accepted/{sub}").result.verdict.value == "AC", sub
    assert _row(report, "compile_error/syntax.py").result.verdict.value == "CE"
    assert _row(report, "mixed/annotated.py").expected == ("TLE", "WA")


def test_guess2023_interactive_by_type_with_derived_limit(launcher: Any) -> None:
    """2023-07: `type: interactive`, output_validator/ of two Python files, no stated time
    limit (slowest accepted time x ac_to_time_limit, not rounded), the validator's WA winning
    over the program's later time-out, judgemessage.txt as the message."""
    report = _report(launcher, "guess2023")
    assert report.version == "2023-07" and report.time_source == "derived"
    slowest = max(r.result.time for r in report.rows if r.submission.startswith("submissions/acc"))
    assert report.time_limit_s == max(0.2, round(slowest * 3.0, 3))
    spin = _row(report, "wrong_answer/out_of_range_then_spin.py").result
    assert spin.verdict.value == "WA" and spin.message.endswith("0 is out of range")
    assert _row(report, "time_limit_exceeded/silent.py").result.verdict.value == "TLE"
    assert report.inputs_checked == 4  # input_validators/range: Range.java


def test_division_scoring_groups_and_float_flags(launcher: Any) -> None:
    """2023-07 scoring: groups scored by min and summed, samples scoring nothing; the default
    validator's float_absolute_tolerance from testdata.yaml; Inf, -INF, NaN read in any case;
    a memory kill accepted as a run-time error and reported as MLE."""
    report = _report(launcher, "division")
    for sub in ("div.py", "div.c"):
        result = _row(report, f"accepted/{sub}").result
        assert (result.score, result.max_score) == (100.0, 100.0), sub
    partial = _row(report, "wrong_answer/partial.py").result
    assert partial.verdict.value == "WA" and partial.score == 30.0
    assert len(partial.cases) == 6  # on_reject: continue in secret/
    assert _row(report, "run_time_error/zero.py").result.score == 30.0
    hog = _row(report, "run_time_error/hog.c")
    assert hog.result.verdict.value in ("MLE", "RE") and hog.ok


def test_closest_scores_from_the_validators_score_file(launcher: Any) -> None:
    """Legacy scoring (type: scoring, validation: custom score): each case's score.txt,
    summed by grader_flags within the group's range; judgemessage.txt as the message."""
    report = _report(launcher, "closest")
    assert (report.time_limit_s, report.time_source) == (0.5, ".timelimit")
    exact, near = (_row(report, f"accepted/{s}").result for s in ("exact.py", "near.c"))
    assert (exact.score, near.score, near.max_score) == (20.0, 18.0, 20.0)
    assert _row(report, "wrong_answer/far.py").result.message.endswith("100 off")


def test_cli_judge_prints_the_score() -> None:
    sub = PROBLEMS / "closest" / "submissions" / "accepted" / "near.c"
    cmd = [sys.executable, "-m", "service.cli", "judge", str(PROBLEMS / "closest"), str(sub)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.rstrip().endswith("verdict: AC (18/20)")


def test_input_validators_with_build_and_run_scripts(launcher: Any, tmp_path: Path) -> None:
    """division/input_validators/bounds has the format's build and run scripts; an input it
    rejects fails the verification."""
    assert _report(launcher, "division").inputs_checked == 6
    pkg = tmp_path / "division"
    shutil.copytree(PROBLEMS / "division", pkg)
    for folder in (pkg / "submissions").iterdir():
        if folder.name != "accepted":
            shutil.rmtree(folder)
    (pkg / "data" / "secret" / "g1" / "z.in").write_text("5000 1\n")
    (pkg / "data" / "secret" / "g1" / "z.ans").write_text("5000\n")
    report = verify(launcher, load_languages(), pkg, 2048)
    assert not report.ok and report.input_failures == ["bounds: secret/g1/z: exit 43"]


def test_verify_cli_exit_status(tmp_path: Path) -> None:
    """0 when every submission gets its folder's verdict, 1 on a mismatch, with the table."""
    pkg = tmp_path / "hypot"
    shutil.copytree(PROBLEMS / "hypot", pkg)
    cmd = [sys.executable, "-m", "service.cli", "problem", "verify", str(pkg), "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["ok"] is True and "[6/6]" in p.stderr
    wrong = pkg / "submissions" / "wrong_answer" / "rounded.py"
    wrong.rename(pkg / "submissions" / "accepted" / "rounded.py")
    p = subprocess.run(cmd[:-1], capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stdout + p.stderr
    line = next(x for x in p.stdout.splitlines() if "rounded.py" in x)
    assert "MISMATCH" in line and " WA " in line


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


def test_cli_directory_submission() -> None:
    sub = PROBLEMS / "modsum" / "submissions" / "accepted" / "multi"
    cmd = [sys.executable, "-m", "service.cli", "judge", str(PROBLEMS / "modsum"), str(sub)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
