"""assignment.toml: the native grading format, parsed and validated once (field: rule errors)."""

from __future__ import annotations

import datetime
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sandbox.spec import MIB, Limits
from worker.grading.fields import (
    FieldError,
    is_number,
    limits_of,
    only_known,
    string_field,
    visibility_of,
)
from worker.grading.tree import TreeError, read_tree

FILE_NAME = "assignment.toml"
KINDS = ("io", "pytest", "unittest", "junit", "go", "command")
CHECKERS = ("exact", "judge0", "token", "float")
# What a test box gets unless the assignment or the test says otherwise.
DEFAULT_LIMITS = Limits(cpu_time_s=10.0, wall_time_s=20.0, memory_bytes=512 * MIB, pids=64)
MAX_TESTS = 500
GO_TEST_NAME = re.compile(r"^Test[A-Za-z0-9_]*(/[A-Za-z0-9_.-]+)*$")
_DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")  # Debian Policy 5.6.1
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


class AssignmentError(ValueError):
    """The assignment breaks the format; the message names the field and the rule."""


@dataclass(frozen=True)
class Case:
    """One input of an io test: stdin, the expected stdout and the case's share of points."""

    stdin: bytes
    expected: bytes
    weight: float = 1.0


@dataclass(frozen=True)
class Test:
    """One graded test; it runs in boxes of its own."""

    number: str
    name: str
    kind: str
    points: float
    visibility: str
    limits: Limits
    target: str = ""  # pytest node id, unittest/junit name, go test name
    command: tuple[str, ...] = ()
    cases: tuple[Case, ...] = ()
    checker: str = "judge0"
    abs_tolerance: float = 1e-6
    rel_tolerance: float = 1e-6
    # The instructor's files that hold this test (its test module, its cases' files): kept
    # out of visible tests' boxes while this test is not visible.
    own_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Setup:
    """What the test image needs beyond the language: Debian packages, pip requirements, a
    script. Declared here; built as an image layer (not yet: see docs/grading.md)."""

    apt: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    script: str = ""

    @property
    def empty(self) -> bool:
        return not (self.apt or self.pip or self.script)


@dataclass(frozen=True)
class Assignment:
    """An assignment directory: the instructor's files (by relative path) and its tests."""

    name: str
    language: str
    image: str
    setup: Setup
    tests: tuple[Test, ...]
    files: dict[str, bytes]
    visibility: str = "visible"
    # The submission's file that io tests build and run ("": the language's source file).
    program: str = ""
    # When after_due_date tests become visible: ISO 8601 with its offset ("": no due date).
    due_date: str = ""

    @property
    def max_score(self) -> float:
        return sum(t.points for t in self.tests)


def load_assignment(directory: Path, files: dict[str, bytes]) -> Assignment:
    """`files` are the directory's files (assignment.toml among them), read safely by the
    caller; the instructor's files are every one of them but assignment.toml."""
    text = files.get(FILE_NAME)
    if text is None:
        raise AssignmentError(f"{directory}: no {FILE_NAME}")
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise AssignmentError(f"{directory / FILE_NAME}: {e}") from None
    own = {p: c for p, c in files.items() if p != FILE_NAME}
    try:
        return parse(data, own)
    except FieldError as e:
        raise AssignmentError(f"{directory / FILE_NAME}: {e.field}: {e.rule}") from None


_TOP = {
    "name",
    "language",
    "image",
    "program",
    "setup",
    "limits",
    "tests",
    "visibility",
    "due_date",
}
_TEST = {
    "name",
    "kind",
    "points",
    "visibility",
    "limits",
    "id",
    "command",
    "cases",
    "checker",
    "abs_tolerance",
    "rel_tolerance",
    "number",
}
_CASE = {"stdin", "expected", "stdin_file", "expected_file", "weight"}


def parse(data: dict[str, Any], files: dict[str, bytes]) -> Assignment:
    only_known("", data, _TOP)
    language = string_field(data, "language", "")
    program = string_field(data, "program", "")
    if program and (program.startswith("/") or ".." in program.split("/") or "\0" in program):
        raise FieldError("program", f"must be a relative path in the submission, got {program!r}")
    image = string_field(data, "image", "")
    if not language and not image:
        raise FieldError("language", "is required (a language key) unless image is given")
    if image and not _NAME.match(image):
        raise FieldError("image", f"must be an image name, got {image!r}")
    base = limits_of(data.get("limits", {}), "limits", DEFAULT_LIMITS)
    setup = _setup(data.get("setup", {}))
    raw_tests = data.get("tests")
    if not isinstance(raw_tests, list) or not raw_tests:
        raise FieldError("tests", "needs at least one [[tests]] table")
    if len(raw_tests) > MAX_TESTS:
        raise FieldError("tests", f"at most {MAX_TESTS} tests, got {len(raw_tests)}")
    tests = tuple(_test(t, f"tests[{i}]", str(i + 1), base, files) for i, t in enumerate(raw_tests))
    names = [t.name for t in tests]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise FieldError("tests", f"test names must be unique, {dup[0]!r} repeats")
    return Assignment(
        name=string_field(data, "name", "assignment"),
        language=language,
        program=program,
        image=image,
        setup=setup,
        tests=tests,
        files=files,
        visibility=visibility_of(data, "visibility"),
        due_date=due_date_of(data.get("due_date"), "due_date"),
    )


def due_date_of(value: Any, where: str) -> str:
    """A due date as ISO 8601 in UTC ("" for none): a TOML offset date-time or such a string.
    Without an offset the moment would depend on the grader's clock zone, so it is refused."""
    if value is None or value == "":
        return ""
    when = value
    if isinstance(value, str):
        try:
            when = datetime.datetime.fromisoformat(value)
        except ValueError:
            when = None
    if not isinstance(when, datetime.datetime) or when.utcoffset() is None:
        raise FieldError(
            where, f"must be a date and time with its offset (2027-01-31T23:59:00Z), got {value!r}"
        )
    return when.astimezone(datetime.UTC).isoformat()


def _test(t: Any, where: str, number: str, base: Limits, files: dict[str, bytes]) -> Test:
    if not isinstance(t, dict):
        raise FieldError(where, "must be a table")
    only_known(where, t, _TEST)
    kind = t.get("kind")
    if kind not in KINDS:
        raise FieldError(f"{where}.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    points = t.get("points", 1.0)
    if not is_number(points) or points < 0:
        raise FieldError(f"{where}.points", f"must be a number >= 0, got {points!r}")
    test = Test(
        number=string_field(t, "number", number, where),
        name=string_field(t, "name", "", where) or f"test {number}",
        kind=kind,
        points=float(points),
        visibility=visibility_of(t, "visibility", where),
        limits=limits_of(t.get("limits", {}), f"{where}.limits", base),
    )
    if kind == "io":
        return _io(t, where, test, files)
    if kind == "command":
        command = t.get("command")
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(a, str) and a and "\0" not in a for a in command)
        ):
            raise FieldError(f"{where}.command", "must be a non-empty list of strings (an argv)")
        return replace(test, command=tuple(command))
    target = string_field(t, "id", "", where)
    if not target or "\0" in target or target.startswith("-"):
        raise FieldError(f"{where}.id", f"a {kind} test needs the id of the test it runs")
    if kind == "go" and not GO_TEST_NAME.match(target):
        raise FieldError(
            f"{where}.id", f"must be a go test's name (TestX or TestX/sub), got {target!r}"
        )
    own = target_file(kind, target, files)
    return replace(test, target=target, own_files=(own,) if own else ())


def target_file(kind: str, target: str, files: dict[str, bytes]) -> str:
    """The instructor's file that holds a pytest, unittest or JUnit test ("" if unknown)."""
    if kind == "pytest":
        path = target.split("::", 1)[0]
        return path if path in files else ""
    suffix = ".java" if kind == "junit" else ".py"
    parts = target.split("#", 1)[0].split(".")
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + suffix
        if path in files:
            return path
    if kind == "junit":  # a class in the default package may sit in any directory
        name = f"{parts[-1]}.java"
        found = [p for p in files if p == name or p.endswith(f"/{name}")]
        return found[0] if len(found) == 1 else ""
    return ""


def _io(t: dict[str, Any], where: str, test: Test, files: dict[str, bytes]) -> Test:
    checker = t.get("checker", "judge0")
    if checker not in CHECKERS:
        raise FieldError(f"{where}.checker", f"must be one of {', '.join(CHECKERS)}")
    raw = t.get("cases")
    if not isinstance(raw, list) or not raw:
        raise FieldError(f"{where}.cases", "an io test needs at least one [[tests.cases]]")
    cases, own = [], []
    for i, c in enumerate(raw):
        at = f"{where}.cases[{i}]"
        if not isinstance(c, dict):
            raise FieldError(at, "must be a table")
        only_known(at, c, _CASE)
        weight = c.get("weight", 1.0)
        if not is_number(weight) or weight <= 0:
            raise FieldError(f"{at}.weight", f"must be a number > 0, got {weight!r}")
        own += [c[k] for k in ("stdin_file", "expected_file") if isinstance(c.get(k), str)]
        cases.append(
            Case(_text(c, "stdin", at, files), _text(c, "expected", at, files), float(weight))
        )
    tol = {k: t.get(k, 1e-6) for k in ("abs_tolerance", "rel_tolerance")}
    for k, v in tol.items():
        if not is_number(v) or v < 0:
            raise FieldError(f"{where}.{k}", f"must be a number >= 0, got {v!r}")
    return replace(
        test,
        cases=tuple(cases),
        checker=checker,
        abs_tolerance=float(tol["abs_tolerance"]),
        rel_tolerance=float(tol["rel_tolerance"]),
        own_files=tuple(sorted(set(own))),
    )


def _text(c: dict[str, Any], key: str, at: str, files: dict[str, bytes]) -> bytes:
    """A case's stdin or expected output, inline or from one of the instructor's files."""
    inline, path = c.get(key), c.get(f"{key}_file")
    if inline is not None and path is not None:
        raise FieldError(f"{at}.{key}", f"give {key} or {key}_file, not both")
    if path is not None:
        if not isinstance(path, str) or path not in files:
            raise FieldError(f"{at}.{key}_file", f"no file {path!r} beside {FILE_NAME}")
        return files[path]
    if inline is None:
        if key == "stdin":
            return b""
        raise FieldError(f"{at}.{key}", f"is required ({key} or {key}_file)")
    if not isinstance(inline, str):
        raise FieldError(f"{at}.{key}", f"must be a string, got {inline!r}")
    return inline.encode()


def _setup(raw: Any) -> Setup:
    if not isinstance(raw, dict):
        raise FieldError("setup", "must be a table")
    only_known("setup", raw, {"apt", "pip", "script"})
    lists = {}
    for key in ("apt", "pip"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise FieldError(f"setup.{key}", "must be a list of non-empty strings")
        lists[key] = tuple(value)
    for name in lists["apt"]:
        if not _DEBIAN_PACKAGE.match(name):
            raise FieldError("setup.apt", f"{name!r} is not a Debian package name")
    script = raw.get("script", "")
    if not isinstance(script, str):
        raise FieldError("setup.script", "must be a string (a file beside assignment.toml)")
    return Setup(lists["apt"], lists["pip"], script)


def load_directory(directory: Path) -> Assignment:
    """An assignment directory (or zip) read safely: every regular file, then parsed."""
    try:
        files = read_tree(directory)
    except TreeError as e:
        raise AssignmentError(str(e)) from None
    return load_assignment(directory, files)
