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
from sandbox.images.store import LayerError, LayerStore
from sandbox.launcher import Launcher
from worker.grading import gradebook
from worker.grading.assignment import FILE_NAME, AssignmentError, load_assignment
from worker.grading.batch import Graded, NativeGrader, Progress, SubmissionGrader, grade_all
from worker.grading.cache import ResultCache
from worker.grading.gradescope import (
    DEFAULT_IMAGE,
    BundleError,
    BundleGrader,
    is_bundle,
    layout_image,
    setup_does_something,
    setup_image,
)
from worker.grading.results import dumps_dict
from worker.grading.runner import Grader, GradingError
from worker.grading.tree import TreeError, digest, read_tree
from worker.jobs.languages import LanguageError, load_languages

GRADE_ALL_GRADED = 0
GRADE_SOME_NOT_GRADED = 1
GRADE_BROKEN = 2  # the assignment (or the host) could not be used: nothing was graded
DEFAULT_CACHE = Path("~/.cache/stockade/grades")
DEFAULT_BUNDLE_IMAGE = DEFAULT_IMAGE


def add_grade_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "grade",
        help="grade student submissions against an assignment.toml or a Gradescope bundle",
        description="Grade each SUBMISSION (a directory or a zip) against ASSIGNMENT (a "
        f"directory or zip with {FILE_NAME}: every test in fresh boxes, scored from what "
        "the host observed; or a Gradescope bundle with run_autograder: one box per "
        "submission), submissions in parallel. Prints one line per submission, or "
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
    p.add_argument(
        "--image",
        default="",
        help="the image a Gradescope bundle's setup.sh runs on (python3)",
    )


def run_grade(args: argparse.Namespace) -> int:
    try:
        files = read_tree(args.assignment)
        bundle = FILE_NAME not in files and is_bundle(files)
        assignment = None if bundle else load_assignment(args.assignment, files)
        languages = load_languages()
    except (TreeError, AssignmentError, LanguageError) as e:
        print(f"stockade grade: {e}", file=sys.stderr)
        return GRADE_BROKEN
    store = None if args.no_cache else ResultCache(args.cache.expanduser())
    jobs = args.jobs or min(os.cpu_count() or 1, HostConfig.from_env().slots)
    try:
        with Launcher() as launcher:
            grader: SubmissionGrader
            if assignment is None:
                grader = _bundle_grader(launcher, args, files)
            else:
                native = Grader(launcher, languages, args.rootfs)
                assignment = native.prepare(assignment, _setup_progress)
                grader = NativeGrader(native, assignment)
            graded = grade_all(grader, digest(files), args.submissions, jobs, store, _progress())
    except (GradingError, BundleError, LayerError, SandboxError, OSError) as e:
        print(f"\nstockade grade: {e}", file=sys.stderr)
        return GRADE_BROKEN
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if assignment is not None:
        title, names = assignment.name, [t.name for t in assignment.tests]
    else:
        title, names = args.assignment.name, _test_names(graded)
    try:
        _write(args, title, names, graded)
    except OSError as e:
        print(f"stockade grade: {e}", file=sys.stderr)
        return GRADE_BROKEN
    return GRADE_SOME_NOT_GRADED if any(g.error for g in graded) else GRADE_ALL_GRADED


def _bundle_grader(
    launcher: Launcher, args: argparse.Namespace, files: dict[str, bytes]
) -> BundleGrader:
    """A Gradescope bundle on --image (python3 by default), with setup.sh's layer when it does
    anything (built once per bundle content) and the /autograder layout."""
    image = args.image or DEFAULT_BUNDLE_IMAGE
    store = LayerStore(launcher.config.state_dir)
    if image not in store.images():
        raise BundleError(f"--image: no image {image!r} (stockade layers ls)")
    if setup_does_something(files):
        try:
            image = setup_image(store, launcher.config, image, files, _setup_progress)
        except LayerError as e:
            raise BundleError(f"setup.sh: {e}") from None
    return BundleGrader(launcher, files, layout_image(store, image), args.assignment.name)


def _test_names(graded: list[Graded]) -> list[str]:
    """A bundle's tests, in the order its results first name them (for the gradebook)."""
    names: dict[str, None] = {}
    for g in graded:
        for t in g.results.get("tests", []):
            names.setdefault(str(t.get("name", t.get("number", ""))), None)
    return list(names)


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
    return f"{results.get('score', 0):g}/{results.get('max_score', 0):g}"


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
