"""Grading throughput: N submissions of a 10-test pytest assignment, graded by `stockade grade`'s
machinery (one box per test) against the same tests run bare, one pytest process per
submission, at the same parallelism, in the same run.
Run as root: .venv/bin/python bench/grading.py [--submissions 20] [--jobs 2] [--json]."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sandbox.launcher import Launcher
from worker.grading.assignment import load_directory
from worker.grading.batch import NativeGrader, grade_all
from worker.grading.runner import Grader

TESTS = 10
SOLUTION = '''"""A correct solution: every test passes."""


def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
'''


def write_assignment(root: Path) -> None:
    tests = ["from solution import fib\n"]
    toml = ['name = "bench"\nlanguage = "python3"\n']
    for i in range(TESTS):
        tests.append(f"\ndef test_{i}() -> None:\n    assert fib({i + 10}) == {_fib(i + 10)}\n")
        toml.append(f'\n[[tests]]\nname = "t{i}"\nkind = "pytest"\nid = "check_fib.py::test_{i}"\n')
    root.mkdir()
    (root / "check_fib.py").write_text("".join(tests))
    (root / "assignment.toml").write_text("".join(toml))


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def write_submissions(root: Path, n: int) -> list[Path]:
    subs = []
    for i in range(n):
        d = root / f"s{i:04d}"
        d.mkdir(parents=True)
        (d / "solution.py").write_text(f"# submission {i}\n{SOLUTION}")
        subs.append(d)
    return subs


def bare_one(assignment: Path, sub: Path, work: Path) -> bool:
    """The same tests, one pytest process for the whole submission, no box."""
    d = work / sub.name
    shutil.copytree(assignment, d)
    shutil.copy(sub / "solution.py", d / "solution.py")
    argv = ["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "check_fib.py"]
    p = subprocess.run(argv, cwd=d, capture_output=True, timeout=120, check=False)
    return p.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--submissions", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stockade-bench-grading-") as tmp:
        root = Path(tmp)
        write_assignment(root / "assignment")
        subs = write_submissions(root / "subs", args.submissions)
        assignment = load_directory(root / "assignment")
        with Launcher() as launcher:
            native = Grader(launcher)
            grader = NativeGrader(native, native.prepare(assignment))
            grade_all(grader, "warm-up", subs[:1], 1)  # templates, page cache
            start = time.monotonic()
            graded = grade_all(grader, "bench", subs, args.jobs)
            boxed_s = time.monotonic() - start
        full = sum(g.results["score"] == TESTS for g in graded)
        (root / "bare").mkdir()
        start = time.monotonic()
        with ThreadPoolExecutor(args.jobs) as pool:
            ok = list(pool.map(lambda s: bare_one(root / "assignment", s, root / "bare"), subs))
        bare_s = time.monotonic() - start
    n = args.submissions
    out = {
        "submissions": n,
        "tests_per_submission": TESTS,
        "jobs": args.jobs,
        "stockade_s": round(boxed_s, 2),
        "stockade_per_min": round(60 * n / boxed_s, 1),
        "bare_s": round(bare_s, 2),
        "bare_per_min": round(60 * n / bare_s, 1),
        "slowdown": round(boxed_s / bare_s, 2),
        "stockade_full_marks": full,
        "bare_passed": sum(ok),
        "load_average": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{n} submissions x {TESTS} pytest tests, {args.jobs} at once")
        print(
            f"stockade (a box per test): {boxed_s:7.2f} s  {out['stockade_per_min']:7.1f}/min"
            f"  ({full}/{n} full marks)"
        )
        print(
            f"bare (one pytest each):    {bare_s:7.2f} s  {out['bare_per_min']:7.1f}/min"
            f"  ({sum(ok)}/{n} passed)"
        )
        print(f"slowdown: {out['slowdown']}x  (load average {out['load_average']:.1f})")
    return 0 if full == n and all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
