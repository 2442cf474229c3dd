"""The in-box harnesses of pytest and unittest tests, and the host's reading of their report.

The student's code runs in the same process as the test runner, so nothing that process can
write is trusted by itself. A test passes only when the host sees all of: the runner's exit
status 0, exactly one report line carrying a key the host made for this box alone, and in
that report the wanted test passed and nothing failed. The key reaches the harness through a
file it deletes before any test module (and so any student code) is imported, and the report
goes to a copy of stdout made at that moment: a results file, a forged line on stdout, an
early exit (even os._exit(0)) or a planted conftest.py cannot make a pass. What remains is
code that searches the interpreter's memory for the key: see docs/grading.md.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from sandbox.spec import FileIn

DIR = "/tmp/.stockade-grader"
KEY_FILE = f"{DIR}/key"
MARK = "STOCKADE-GRADER-REPORT "
# Files the student may not place: each would run before, or instead of, the instructor's
# code in the runner's process (pytest loads conftest.py by itself; site loads the others).
REFUSED_NAMES = ("conftest.py", "sitecustomize.py", "usercustomize.py")
# Directories the student may not fill: the JUnit harness's compiled classes go there.
REFUSED_DIRS = ("classes/",)

_COMMON = f"""
import json, os
with open({KEY_FILE!r}) as _f:
    _KEY = _f.read().strip()
os.unlink({KEY_FILE!r})
_OUT = os.dup(1)
_OUTCOMES = []


def _report(exit_status):
    line = json.dumps({{"key": _KEY, "exit": int(exit_status), "outcomes": _OUTCOMES}})
    os.write(_OUT, ("\\n{MARK}" + line + "\\n").encode())
"""

PYTEST_PLUGIN = (
    '"""Stockade: each test outcome, reported with the host\'s key (worker/grading)."""\n'
    + _COMMON
    + """

def pytest_collectreport(report):
    if report.outcome != "passed":
        _OUTCOMES.append([report.nodeid, "collect", report.outcome])


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        _OUTCOMES.append([report.nodeid, report.when, report.outcome])


def pytest_sessionfinish(session, exitstatus):
    _report(exitstatus)
"""
)

UNITTEST_MAIN = (
    '"""Stockade: one unittest name run, each outcome reported with the host\'s key."""\n'
    + _COMMON
    + """
import sys
import unittest

sys.path.insert(0, os.getcwd())


class _Result(unittest.TextTestResult):
    def addSuccess(self, test):
        super().addSuccess(test)
        _OUTCOMES.append([test.id(), "call", "passed"])

    def addFailure(self, test, err):
        super().addFailure(test, err)
        _OUTCOMES.append([test.id(), "call", "failed"])

    def addError(self, test, err):
        super().addError(test, err)
        _OUTCOMES.append([test.id(), "call", "error"])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        _OUTCOMES.append([test.id(), "call", "skipped"])

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        _OUTCOMES.append([test.id(), "call", "xfailed"])

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        _OUTCOMES.append([test.id(), "call", "failed"])


suite = unittest.defaultTestLoader.loadTestsFromName(sys.argv[1])
runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=_Result)
result = runner.run(suite)
_report(0 if result.wasSuccessful() else 1)
sys.exit(0 if result.wasSuccessful() else 1)
"""
)

# /box on sys.path for the tests' imports of the student's modules, added by pytest after
# the harness has run (the ini's directory is the harness's, so the path is absolute).
PYTEST_INI = "[pytest]\npythonpath = /box\n"
# -P: no working directory at the head of sys.path, so a student's pytest.py, json.py or
# stockade_grader.py is never imported in place of the real one before the key is gone.
# -s: no user site directory, whose .pth files would run at start-up (HOME is /box).
PYTHON = ("python3", "-P", "-s")


@dataclass(frozen=True)
class Harness:
    """One box's harness: its argv, its files and the key only this box's report carries."""

    argv: tuple[str, ...]
    files: tuple[FileIn, ...]
    key: str


def pytest_harness(target: str) -> Harness:
    key = secrets.token_hex(16)
    # -c: the harness's own ini, so no pytest.ini, tox.ini or pyproject.toml of the
    # submission's configures the run; no cache directory is written or read.
    argv = (
        *PYTHON,
        "-m",
        "pytest",
        "-c",
        f"{DIR}/pytest.ini",
        "--rootdir=/box",
        "-p",
        "stockade_grader",
        "-p",
        "no:cacheprovider",
        "-q",
        "--",
        target,
    )
    files = (
        FileIn(f"{DIR}/stockade_grader.py", PYTEST_PLUGIN.encode()),
        FileIn(f"{DIR}/pytest.ini", PYTEST_INI.encode()),
        FileIn(KEY_FILE, key.encode(), 0o600),
    )
    return Harness(argv, files, key)


def unittest_harness(target: str) -> Harness:
    key = secrets.token_hex(16)
    argv = (*PYTHON, f"{DIR}/stockade_unittest.py", target)
    files = (
        FileIn(f"{DIR}/stockade_unittest.py", UNITTEST_MAIN.encode()),
        FileIn(KEY_FILE, key.encode(), 0o600),
    )
    return Harness(argv, files, key)


@dataclass(frozen=True)
class Verdict:
    """What the host concluded from one runner box."""

    passed: bool
    reason: str
    output: str  # the runner's output without the report line


def judge_report(
    stdout: bytes, exit_code: int | None, key: str, target: str, kind: str = "pytest"
) -> Verdict:
    """Pass only with exit status 0 and one keyed report in which a test named by `target`
    passed and no outcome failed."""
    text = stdout.decode("utf-8", "replace")
    kept, reports = [], []
    for line in text.split("\n"):
        if line.startswith(MARK):
            reports.append(line[len(MARK) :])
        else:
            kept.append(line)
    output = "\n".join(kept).strip("\n")
    keyed = [r for r in (_load(r) for r in reports) if r is not None and r.get("key") == key]
    if len(keyed) != 1:
        why = "no report from the test runner" if not keyed else "more than one report"
        if exit_code == 0:
            why += " though it exited 0 (did the program exit early?)"
        return Verdict(False, why, output)
    report = keyed[0]
    raw = report.get("outcomes")
    listed = raw if isinstance(raw, list) else []
    outcomes = [o for o in listed if isinstance(o, list) and len(o) == 3]
    bad = [o for o in outcomes if o[2] != "passed"]
    ran = [o[0] for o in outcomes if o[1] == "call" and o[2] == "passed"]
    if bad:
        return Verdict(False, f"{bad[0][0] or target}: {bad[0][2]} ({bad[0][1]})", output)
    if not any(_names(target, nodeid, kind) for nodeid in ran):
        return Verdict(False, f"no test named {target!r} ran", output)
    if exit_code != 0 or report.get("exit") != 0:
        return Verdict(False, f"the test runner exited with status {exit_code}", output)
    return Verdict(True, "", output)


_SEPARATORS = {"pytest": ("::", "["), "unittest": (".",), "junit": ("#",)}


def _names(target: str, ran: str, kind: str) -> bool:
    """Whether the test `ran` is (or is inside) `target`: a pytest node id (file, class,
    function, parameter), a dotted unittest name or a JUnit Class#method."""
    if kind == "junit":  # Class#method(int): its invocations report as Class#method
        target = target.split("(", 1)[0]
    return ran == target or any(ran.startswith(target + sep) for sep in _SEPARATORS[kind])


def _load(text: str) -> dict[str, object] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
