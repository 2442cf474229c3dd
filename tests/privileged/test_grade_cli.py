"""`stockade grade` end to end: a class of C submissions, the gradebook, reports, the cache."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from worker.grading.results import validate

pytestmark = pytest.mark.privileged
CSUM = Path(__file__).parent.parent / "assignments" / "csum"
SUBMISSIONS = ["full", "partial", "crash", "compile_error"]


def grade(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "service.cli", "grade", *map(str, argv)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_a_class_graded_then_cached(tmp_path: Path) -> None:
    subs = [CSUM / "submissions" / s for s in SUBMISSIONS]
    book, out, cache = tmp_path / "book.csv", tmp_path / "out", tmp_path / "cache"
    first = grade(CSUM / "assignment", *subs, "--csv", book, "--out", out, "--cache", cache)
    assert first.returncode == 0, first.stderr
    assert [line.split("\t")[1] for line in first.stdout.splitlines()] == [
        "10/10",
        "7/10",
        "8/10",
        "0/10",
    ]
    rows = list(csv.reader(book.open()))
    assert rows[0] == ["submission", "small sums", "large sums", "negative numbers", "total"]
    assert [r[1:] for r in rows[1:]] == [
        ["4", "4", "2", "10"],
        ["4", "1", "2", "7"],
        ["4", "4", "0", "8"],
        ["0", "0", "0", "0"],
    ]
    for name in SUBMISSIONS:
        results = json.loads((out / name / "results.json").read_text())
        assert validate(results) == []
        assert (out / name / "report.txt").read_text().startswith("Sum of integers: ")
    assert "(cached)" not in first.stderr
    # The same files again: nothing is graded twice, and the answers are the same.
    again = grade(CSUM / "assignment", *subs, "--json", "--cache", cache)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("(cached)") == len(SUBMISSIONS)
    lines = [json.loads(line) for line in again.stdout.splitlines()]
    assert [d["submission"] for d in lines] == list(map(str, subs))
    assert [d["score"] for d in lines] == [10, 7, 8, 0]


def test_a_changed_submission_is_graded_again(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    source = (CSUM / "submissions" / "full" / "main.c").read_text()
    (sub / "main.c").write_text(source)
    cache = tmp_path / "cache"
    assert "10/10" in grade(CSUM / "assignment", sub, "--cache", cache).stdout
    (sub / "main.c").write_text(source.replace("sum += x", "sum -= x"))
    changed = grade(CSUM / "assignment", sub, "--cache", cache)
    assert "(cached)" not in changed.stderr and "\t0/10" in changed.stdout


def test_exit_1_when_a_submission_cannot_be_graded(tmp_path: Path) -> None:
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_bytes(b"not a zip")
    p = grade(CSUM / "assignment", CSUM / "submissions" / "full", bad_zip, "--no-cache")
    assert p.returncode == 1
    assert "NOT GRADED" in p.stdout and "not a zip file" in p.stderr


def test_exit_2_when_the_assignment_is_broken(tmp_path: Path) -> None:
    (tmp_path / "assignment.toml").write_text('language = "c"\n[[tests]]\nkind = "nope"\n')
    p = grade(tmp_path, CSUM / "submissions" / "full")
    assert p.returncode == 2
    assert "tests[0].kind: must be one of" in p.stderr


BUNDLE = Path(__file__).parent.parent / "assignments" / "gsbundle"


def test_a_gradescope_bundle(tmp_path: Path) -> None:
    """run_autograder in a box per submission with Gradescope's layout; a submission that
    kills the grader before it writes results.json is not graded (exit 1), and says why."""
    names = ["full", "partial", "forge", "crash"]
    subs = [BUNDLE / "submissions" / s for s in names]
    p = grade(BUNDLE / "bundle", *subs, "--json", "--no-cache", "--csv", tmp_path / "b.csv")
    assert p.returncode == 1, p.stderr
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    assert [d["score"] for d in lines] == [5, 2, 0, 0]
    assert [[t["score"] for t in d["tests"]] for d in lines[:3]] == [[2, 3], [2, 0], [0, 0]]
    assert "left no /autograder/results/results.json" in lines[3]["extra_data"]["error"]
    rows = list(csv.reader((tmp_path / "b.csv").open()))
    assert rows[0] == ["submission", "mean of 1 2 3", "mean of nothing", "total"]
    assert rows[4][1:] == ["", "", ""]


def test_a_bundle_whose_setup_fails_is_not_used(tmp_path: Path) -> None:
    """setup.sh runs (tests/privileged/test_setup_box.py has the ones that install); one that
    fails stops the grading before any submission, with its output and status."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "setup.sh").write_text("#!/bin/bash\necho no such package >&2\nexit 100\n")
    (bundle / "run_autograder").write_text("#!/bin/bash\necho '{\"score\": 1}' > x\n")
    p = grade(bundle, BUNDLE / "submissions" / "full", "--no-cache")
    assert p.returncode == 2, p.stderr
    assert "setup: | no such package" in p.stderr
    assert "setup.sh: setup: the script ended with status 100" in p.stderr


def _zip(src: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as z:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(src).as_posix())
    return dest


def test_zips_of_an_assignment_and_a_submission(tmp_path: Path) -> None:
    assignment = _zip(CSUM / "assignment", tmp_path / "csum.zip")
    sub = _zip(CSUM / "submissions" / "partial", tmp_path / "alice.zip")
    p = grade(assignment, sub, "--no-cache", "--out", tmp_path / "out")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\t")[1].strip() == "7/10"
    assert (
        (tmp_path / "out" / "alice" / "report.txt").read_text().startswith("Sum of integers: 7/10")
    )
