"""`stockade grade ASSIGNMENT SUBMISSION...`: a class graded at once, a gradebook, reports."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from sandbox.config import HostConfig
from sandbox.errors import SandboxError
from sandbox.launcher import Launcher
from worker.grading import gradebook
from worker.grading.assignment import FILE_NAME, AssignmentError, load_assignment
from worker.grading.batch import Graded, Progress, grade_all
from worker.grading.cache import ResultCache
from worker.grading.results import dumps_dict
from worker.grading.runner import Grader, GradingError
from worker.grading.tree import TreeError, digest, read_tree
from worker.jobs.languages import LanguageError, load_languages

GRADE_ALL_GRADED = 0
GRADE_SOME_NOT_GRADED = 1
GRADE_BROKEN = 2  # the assignment (or the host) could not be used: nothing was graded
DEFAULT_CACHE = Path("~/.cache/stockade/grades")


def add_grade_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "grade",
        help="grade student submissions against an assignment (assignment.toml)",
        description="Grade each SUBMISSION (a directory or a zip) against ASSIGNMENT (a "
        f"directory or zip with {FILE_NAME}): every test in fresh boxes, scored from what "
        "the host observed, submissions in parallel. Prints one line per submission, or "
        "with --json one results.json per line. Exit status: 0 every submission was graded "
        "(whatever its score), 1 some could not be, 2 the assignment could not be used.",
        allow_abbrev=False,
    )
    p.add_argument("assignment", metavar="ASSIGNMENT", type=Path)
    p.add_argument("submissions", metavar="SUBMISSION", type=Path, nargs="+")
    p.add_argument("--csv", type=Path, metavar="FILE", help="write the gradebook here")
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="write results.json and report.txt per submission"
    )
    p.add_argument("--json", action="store_true", help="one results.json per line, + submission")
    p.add_argument("--jobs", type=int, default=0, help="submissions at once (CPUs, at most slots)")
    p.add_argument("--rootfs", default="host", help="image the boxes run on ('host', 'image')")
    p.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        metavar="DIR",
        help="results of earlier runs, by content (~/.cache/stockade/grades)",
    )
    p.add_argument("--no-cache", action="store_true", help="grade every submission again")


def run_grade(args: argparse.Namespace) -> int:
    try:
        files = read_tree(args.assignment)
        if FILE_NAME not in files and {"setup.sh", "run_autograder"} <= set(files):
            raise AssignmentError(
                f"{args.assignment}: a Gradescope bundle (setup.sh, run_autograder); "
                f"those are not supported yet, only {FILE_NAME}"
            )
        assignment = load_assignment(args.assignment, files)
        languages = load_languages()
    except (TreeError, AssignmentError, LanguageError) as e:
        print(f"stockade grade: {e}", file=sys.stderr)
        return GRADE_BROKEN
    store = None if args.no_cache else ResultCache(args.cache.expanduser())
    jobs = args.jobs or min(os.cpu_count() or 1, HostConfig.from_env().slots)
    try:
        with Launcher() as launcher:
            grader = Grader(launcher, languages, args.rootfs)
            assignment = grader.prepare(assignment, _setup_progress)
            graded = grade_all(
                grader, assignment, digest(files), args.submissions, jobs, store, _progress()
            )
    except (GradingError, SandboxError, OSError) as e:
        print(f"\nstockade grade: {e}", file=sys.stderr)
        return GRADE_BROKEN
    if sys.stderr.isatty():
        print(file=sys.stderr)
    names = [t.name for t in assignment.tests]
    try:
        _write(args, assignment.name, names, graded)
    except OSError as e:
        print(f"stockade grade: {e}", file=sys.stderr)
        return GRADE_BROKEN
    return GRADE_SOME_NOT_GRADED if any(g.error for g in graded) else GRADE_ALL_GRADED


def _progress() -> Progress:
    live = sys.stderr.isatty()

    def show(done: int, total: int, g: Graded) -> None:
        # One line rewritten in place on a terminal; a line per submission in a log.
        what = f"NOT GRADED: {g.error}" if g.error else _score(g.results)
        line = f"[{done}/{total}] {g.submission}: {what}{' (cached)' if g.cached else ''}"
        print(f"\r\033[K{line}" if live else line, end="" if live else "\n", file=sys.stderr)
        sys.stderr.flush()

    return show


def _setup_progress(line: str) -> None:
    print(f"stockade grade: setup: {line.strip()}", file=sys.stderr)


def _score(results: dict[str, Any]) -> str:
    return f"{results['score']:g}/{results['max_score']:g}"


def _write(args: argparse.Namespace, title: str, names: list[str], graded: list[Graded]) -> None:
    for g in graded:
        if args.json:
            print(dumps_dict(g.results, g.submission))
        else:
            print(f"{g.submission}\t{'NOT GRADED' if g.error else _score(g.results)}")
    if args.csv is not None:
        with args.csv.open("w", newline="") as f:
            rows = [(g.submission, None if g.error else g.results) for g in graded]
            gradebook.write_csv(f, names, rows)
    if args.out is not None:
        for name, g in zip(
            gradebook.out_names([g.submission for g in graded]), graded, strict=True
        ):
            d = args.out / name
            d.mkdir(parents=True, exist_ok=True)
            (d / "results.json").write_text(json.dumps(g.results, indent=2) + "\n")
            (d / "report.txt").write_text(gradebook.report_text(title, g.submission, g.results))
