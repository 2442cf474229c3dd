"""The rules a submission keeps: the types of a JSON body, then the values of a Submission.
The API checks what it accepts by them, and the worker what it reads from the queue (which
may not have come through the API)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from sandbox.spec import TIERS
from worker.jobs.model import DEFAULTS, MAXIMA, MINIMA, CheckerSpec, Program, Submission

CHECKER_KINDS = ("exact", "judge0", "token", "float", "custom")
CONVENTIONS = ("testlib", "icpc")  # testlib: exit 0 accepts; ICPC: exit 42 accepts, 43 rejects
MAX_CASES = 1000
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
MAX_ARGS_CHARS = 512  # command_line_arguments, and a checker's or interactor's args in all
# Judge0 1.13 after CVE-2024-28185: options are words, never shell syntax.
COMPILER_OPTIONS = re.compile(r"^[A-Za-z0-9_\-+.=,:/ ]*$")
MAX_OPTIONS_CHARS = 512


class InvalidSubmission(ValueError):
    """A submission that breaks the rules: every rule broken, as 'field: rule' sentences."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def decode(text: str | bytes) -> Submission:
    """A stored submission's JSON, checked as the API checks a request body (types, then
    values): what the worker reads from the queue may not have come through the API."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise InvalidSubmission([f"submission: not valid JSON ({e})"]) from None
    if not isinstance(data, dict):
        raise InvalidSubmission(["submission: must be a JSON object"])
    errors = type_errors(data)
    if errors:
        raise InvalidSubmission(errors)
    try:
        sub = Submission.from_dict(data)
    except (TypeError, ValueError) as e:
        raise InvalidSubmission([str(e)]) from None
    errors = validate(sub)
    if errors:
        raise InvalidSubmission(errors)
    return sub


_STRINGS = ("source_code", "stdin", "command_line_arguments", "compiler_options", "source_name")
COMPILE_LIMITS = ("compile_cpu_time_limit", "compile_wall_time_limit", "compile_memory_limit")
# The least a compile box may be asked for: 10 ms of each clock (no compiler starts in less)
# and the box's 4 MiB of memory (the judge's BOX_MIN_MEMORY). A compile box, unlike a run box,
# is never given the floor and held to the asked limit after the run.
COMPILE_FLOORS = {
    "compile_cpu_time_limit": 0.01,
    "compile_wall_time_limit": 0.01,
    "compile_memory_limit": 4096,
}
# A program's own path in /box: words the languages' argvs (some of them `sh -c` lines) can
# hold without quoting, in directories, never outside /box nor starting like an option.
SOURCE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.+-]*)*$")
MAX_SOURCE_NAME_CHARS = 255
_BOOLS = ("enable_network", "redirect_stderr_to_stdout", "source_base64")
_CASE_TYPES: dict[str, tuple[type, ...]] = {
    "input": (str,),
    "expected_output": (str, type(None)),
    "points": (int, float),
    "name": (str,),
}
_PROGRAM_TYPES: dict[str, tuple[type, ...]] = {
    "source_code": (str,),
    "language_id": (int,),
    "convention": (str,),
    "args": (list,),
}
_CHECKER_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "abs_tolerance": (int, float),
    "rel_tolerance": (int, float),
    "case_sensitive": (bool,),
    "program": (dict, type(None)),
}


def type_errors(data: dict[str, Any]) -> list[str]:
    """Every field of a JSON object that has the wrong type, as 'field: rule' sentences;
    from_dict() and validate() may then trust the types."""
    errors: list[str] = []
    if "language_id" not in data:
        errors.append("language_id: can't be blank")
    for name in _STRINGS:
        if data.get(name) is not None and not isinstance(data[name], str):
            errors.append(f"{name}: must be a string")
    if data.get("expected_output") is not None and not isinstance(data["expected_output"], str):
        errors.append("expected_output: must be a string or null")
    for name in _BOOLS:
        if data.get(name) is not None and not isinstance(data[name], bool):
            errors.append(f"{name}: must be true or false")
    for name in ("language_id", *DEFAULTS, *COMPILE_LIMITS):
        v = data.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            errors.append(f"{name}: must be a number")
        elif isinstance(v, float) and not math.isfinite(v):
            errors.append(f"{name}: must be a finite number")
    if isinstance(data.get("language_id"), float):
        errors.append("language_id: must be an integer")
    if data.get("additional_files") is not None and not isinstance(data["additional_files"], str):
        errors.append("additional_files: must be a base64 string of a zip")
    if data.get("tier") is not None and not isinstance(data["tier"], str):
        errors.append("tier: must be a string")
    cases = data.get("test_cases")
    if cases is not None:
        if not isinstance(cases, list):
            errors.append("test_cases: must be a list of objects")
        else:
            for i, case in enumerate(cases):
                errors += _object_errors(f"test_cases[{i}]", case, _CASE_TYPES)
    checker = data.get("checker")
    if checker is not None:
        errors += _object_errors("checker", checker, _CHECKER_TYPES)
        if isinstance(checker, dict) and isinstance(checker.get("program"), dict):
            errors += _object_errors("checker.program", checker["program"], _PROGRAM_TYPES)
    if data.get("interactor") is not None:
        errors += _object_errors("interactor", data["interactor"], _PROGRAM_TYPES)
    return errors


def _object_errors(where: str, value: Any, types: dict[str, tuple[type, ...]]) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: must be an object"]
    errors = [f"{where}.{k}: unknown field" for k in value if k not in types]
    for k, allowed in types.items():
        v = value.get(k)
        if k in value and (
            not isinstance(v, allowed) or (isinstance(v, bool) and bool not in allowed)
        ):
            errors.append(f"{where}.{k}: wrong type {type(v).__name__}")
    if "source_code" in types and "source_code" not in value:
        errors.append(f"{where}.source_code: can't be blank")
    args = value.get("args")
    if "args" in types and isinstance(args, list) and not all(isinstance(a, str) for a in args):
        errors.append(f"{where}.args: must be a list of strings")
    return errors


def validate(sub: Submission) -> list[str]:
    """Every rule the submission breaks, as 'field: rule' sentences (empty when valid)."""
    errors: list[str] = []
    if not isinstance(sub.language_id, int) or isinstance(sub.language_id, bool):
        errors.append(f"language_id: must be an integer, got {sub.language_id!r}")
    for name in DEFAULTS:
        value = getattr(sub, name)
        low, high = MINIMA[name], MAXIMA[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"{name}: must be a number, got {value!r}")
        elif not math.isfinite(value) or not low <= value <= high:
            errors.append(f"{name}: must be between {low:g} and {high:g}, got {value!r}")
    for name in ("source_code", "stdin", "command_line_arguments", "compiler_options"):
        if not isinstance(getattr(sub, name), str):
            errors.append(f"{name}: must be a string")
    options = sub.compiler_options
    if isinstance(options, str) and (
        not COMPILER_OPTIONS.match(options) or len(options) > MAX_OPTIONS_CHARS
    ):
        errors.append(
            f"compiler_options: at most {MAX_OPTIONS_CHARS} characters of letters, digits and "
            "_-+.=,:/ and space"
        )
    args = sub.command_line_arguments
    if isinstance(args, str) and len(args) > MAX_ARGS_CHARS:
        errors.append(f"command_line_arguments: at most {MAX_ARGS_CHARS} characters")
    for name in COMPILE_LIMITS:
        value = getattr(sub, name)
        low = COMPILE_FLOORS[name]
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            errors.append(f"{name}: must be a number >= 0 (0: the language's own), got {value!r}")
        elif 0 < value < low:
            errors.append(f"{name}: must be 0 (the language's own) or at least {low:g}")
    name = sub.source_name
    if name and (len(name) > MAX_SOURCE_NAME_CHARS or not SOURCE_NAME.match(name)):
        errors.append(
            f"source_name: a relative path in /box of at most {MAX_SOURCE_NAME_CHARS} characters, "
            "each part of letters, digits and _.+- (not starting with . + or -)"
        )
    if sub.tier not in ("", *TIERS):
        errors.append(f"tier: must be one of {', '.join(TIERS)}, got {sub.tier!r}")
    if len(sub.test_cases) > MAX_CASES:
        errors.append(f"test_cases: at most {MAX_CASES} cases, got {len(sub.test_cases)}")
    errors += _problem_errors(sub) + _assignment_errors(sub) + _source_errors(sub)
    for i, case in enumerate(sub.test_cases):
        if not math.isfinite(case.points) or case.points < 0:
            errors.append(f"test_cases[{i}].points: must be a finite number >= 0")
    c = sub.checker
    if c.kind not in CHECKER_KINDS:
        errors.append(f"checker.kind: must be one of {', '.join(CHECKER_KINDS)}, got {c.kind!r}")
    if c.kind == "custom" and c.program is None:
        errors.append("checker.program: a custom checker needs a program")
    for name in ("abs_tolerance", "rel_tolerance"):
        value = getattr(c, name)
        if not math.isfinite(value) or value < 0:
            errors.append(f"checker.{name}: must be a finite number >= 0, got {value!r}")
    for where, prog in (("checker.program", c.program), ("interactor", sub.interactor)):
        if prog is not None:
            errors += _program_errors(where, prog)
    return errors


def _program_errors(where: str, prog: Program) -> list[str]:
    """A checker or interactor: client code, bounded like the program (its source's size is
    capped by the API with source_code's cap)."""
    errors: list[str] = []
    if not isinstance(prog.source_code, str):
        errors.append(f"{where}.source_code: must be a string")
    if not isinstance(prog.language_id, int) or isinstance(prog.language_id, bool):
        errors.append(f"{where}.language_id: must be an integer, got {prog.language_id!r}")
    if prog.convention not in CONVENTIONS:
        errors.append(f"{where}.convention: must be testlib or icpc, got {prog.convention!r}")
    if not all(isinstance(a, str) for a in prog.args):
        errors.append(f"{where}.args: must be a list of strings")
    elif sum(len(a) + 1 for a in prog.args) > MAX_ARGS_CHARS + 1:
        errors.append(f"{where}.args: at most {MAX_ARGS_CHARS} characters in all")
    return errors


MULTI_FILE_ID = 89  # Judge0's "Multi-file program"


def _source_errors(sub: Submission) -> list[str]:
    """Judge0's rules for language 89 (its files come in the zip, never as source_code), and
    a binary source's base64 (language 44's programs are bytes, not text)."""
    errors: list[str] = []
    if sub.language_id == MULTI_FILE_ID:
        if not sub.additional_files:
            errors.append("additional_files: can't be blank for a Multi-file program (89)")
        if sub.source_code:
            errors.append("source_code: must be blank for a Multi-file program (89)")
    if sub.source_base64 and isinstance(sub.source_code, str):
        try:
            sub.source_bytes()
        except ValueError as e:
            errors.append(str(e))
    return errors


def _assignment_errors(sub: Submission) -> list[str]:
    """A graded submission is its files only: the assignment has the tests and the limits."""
    if not sub.assignment:
        return []
    if not isinstance(sub.assignment, str) or not _DIGEST.match(sub.assignment):
        return ["assignment: must be an assignment id (64 hex digits, POST /api/v1/assignments)"]
    own = {
        "problem": bool(sub.problem),
        "source_code": bool(sub.source_code),
        "test_cases": bool(sub.test_cases),
        "stdin": bool(sub.stdin),
        "expected_output": sub.expected_output is not None,
        "checker": sub.checker != CheckerSpec(),
        "interactor": sub.interactor is not None,
        "enable_network": sub.enable_network,
        **{name: getattr(sub, name) != DEFAULTS[name] for name in DEFAULTS},
    }
    rule = "not allowed with assignment (the assignment sets it)"
    errors = [f"{k}: {rule}" for k, v in own.items() if v]
    if not sub.additional_files:
        errors.append("additional_files: a graded submission needs its files (a zip)")
    return errors


def _problem_errors(sub: Submission) -> list[str]:
    """A submission against a package brings its program only: the package has the rest."""
    if not sub.problem:
        return []
    if not isinstance(sub.problem, str) or not _DIGEST.match(sub.problem):
        return ["problem: must be a problem id (64 hex digits, from POST /api/v1/problems)"]
    own = {
        "test_cases": bool(sub.test_cases),
        "stdin": bool(sub.stdin),
        "expected_output": sub.expected_output is not None,
        "checker": sub.checker != CheckerSpec(),
        "interactor": sub.interactor is not None,
        "additional_files": bool(sub.additional_files),
        "enable_network": sub.enable_network,
        # The package's limits apply: a limit asked for here would be silently ignored.
        **{name: getattr(sub, name) != DEFAULTS[name] for name in DEFAULTS},
    }
    return [f"{k}: not allowed with problem (the package sets it)" for k, v in own.items() if v]
