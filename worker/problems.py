"""ICPC/Kattis problem packages: problem.yaml, data/{sample,secret}, output validators, limits."""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.jobs.model import MAXIMA, CheckerSpec, JudgeResult, Program, Submission, TestCase

if TYPE_CHECKING:
    from worker.jobs.languages import Language
    from worker.judge import Judge

DEFAULT_TIME_LIMIT_S = 1.0
DEFAULT_MEMORY_MIB = 256
MAX_DATA_BYTES = 64 << 20


class ProblemError(ValueError):
    """The package is malformed; the message names the file."""


@dataclass(frozen=True)
class Problem:
    name: str
    cases: tuple[TestCase, ...]
    time_limit_s: float
    memory_mib: int
    checker: CheckerSpec
    interactor: Program | None = None


def load_problem(directory: Path, languages: dict[int, Language]) -> Problem:
    """The package, or a ProblemError saying what in it is wrong (never another exception)."""
    try:
        problem = _load_problem(directory, languages)
    except ProblemError:
        raise
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as e:
        # yaml's and our parsers' errors, a non-number limit, a file not in UTF-8
        raise ProblemError(f"{directory.name}: malformed package: {type(e).__name__}: {e}") from e
    except Exception as e:  # PyYAML's YAMLError, when PyYAML is installed, is not a ValueError
        if type(e).__module__.startswith("yaml"):
            raise ProblemError(f"{directory.name}: problem.yaml: {e}") from e
        raise
    if not (math.isfinite(problem.time_limit_s) and problem.time_limit_s > 0):
        raise ProblemError(f"{directory.name}: the time limit must be a positive number")
    if problem.memory_mib < 1:
        raise ProblemError(f"{directory.name}: limits.memory must be at least 1 (MiB)")
    return problem


def _load_problem(directory: Path, languages: dict[int, Language]) -> Problem:
    meta = _read_yaml(directory / "problem.yaml")
    validation = str(meta.get("validation", "default")).split()
    limits = meta.get("limits") or {}
    if not isinstance(limits, dict):
        raise ProblemError("problem.yaml: limits must be a mapping")
    checker = CheckerSpec("token", case_sensitive=False)  # the default validator's rule
    interactor = None
    if validation[:1] == ["custom"]:
        program = _validator(directory / "output_validators", languages)
        if "interactive" in validation:
            interactor = program
        else:
            checker = CheckerSpec("custom", program=program)
    else:
        checker = _default_validator(str(meta.get("validator_flags", "")))
    return Problem(
        name=str(meta.get("name", directory.name)),
        cases=_cases(directory / "data"),
        time_limit_s=_time_limit(directory, limits),
        memory_mib=int(limits.get("memory", DEFAULT_MEMORY_MIB)),
        checker=checker,
        interactor=interactor,
    )


def submission(problem: Problem, source: str, language_id: int) -> Submission:
    """The package as a submission: the package's limits in Judge0's units."""
    memory_kb = min(problem.memory_mib * 1024, int(MAXIMA["memory_limit"]))
    cpu = min(problem.time_limit_s, MAXIMA["cpu_time_limit"])
    return Submission(
        source_code=source,
        language_id=language_id,
        cpu_time_limit=cpu,
        cpu_extra_time=min(0.5, cpu),
        wall_time_limit=min(2 * cpu + 2, MAXIMA["wall_time_limit"]),
        memory_limit=memory_kb,
        stack_limit=int(MAXIMA["stack_limit"]),
        test_cases=problem.cases,
        checker=problem.checker,
        interactor=problem.interactor,
    )


def judge_problem(judge: Judge, directory: Path, source: str, language_id: int) -> JudgeResult:
    problem = load_problem(directory, judge.languages)
    return judge.judge(submission(problem, source, language_id))


def language_for(languages: dict[int, Language], path: str, key_or_id: str = "") -> int:
    """--language as a key or an id; otherwise the one language whose source file has the
    submission's extension (the lowest id where several share one)."""
    if key_or_id:
        for lang in languages.values():
            if key_or_id in (lang.key, str(lang.id)):
                return lang.id
        raise ProblemError(f"--language: no language {key_or_id!r}")
    ext = os.path.splitext(path)[1]
    for lang_id in sorted(languages):
        if ext and os.path.splitext(languages[lang_id].source_file)[1] == ext:
            return lang_id
    raise ProblemError(f"{path}: no language for the extension {ext!r}; pass --language")


# --- Package parts ------------------------------------------------------------------------


def _cases(data: Path) -> tuple[TestCase, ...]:
    """data/sample then data/secret, each sorted by name: every .in with its .ans."""
    cases = []
    for group in ("sample", "secret"):
        folder = data / group
        if not folder.is_dir():
            continue
        for inp in sorted(folder.rglob("*.in")):
            ans = inp.with_suffix(".ans")
            if not ans.is_file():
                raise ProblemError(f"{inp}: no {ans.name} beside it")
            name = f"{group}/{inp.relative_to(folder).with_suffix('')}"
            cases.append(TestCase(_text(inp), _text(ans), 1.0, name))
    if not cases:
        raise ProblemError(f"{data}: no .in/.ans pairs in sample/ or secret/")
    return tuple(cases)


def _time_limit(directory: Path, limits: dict[str, Any]) -> float:
    """problem.yaml's limits.time_limit (2023-07 format), else DOMjudge's .timelimit file."""
    if "time_limit" in limits:
        return float(limits["time_limit"])
    for name in (".timelimit", "domjudge-problem.ini"):
        path = directory / name
        if path.is_file():
            text = path.read_text()
            value = text.split("=")[-1].strip().strip("'\"") if "=" in text else text.strip()
            return float(value)
    return DEFAULT_TIME_LIMIT_S


def _default_validator(flags: str) -> CheckerSpec:
    """The default validator's flags: case_sensitive, space_change_sensitive,
    float_tolerance / float_absolute_tolerance / float_relative_tolerance."""
    words = flags.split()
    opts = dict(zip(words, [*words[1:], ""], strict=False))
    tol = opts.get("float_tolerance")
    abs_tol = opts.get("float_absolute_tolerance", tol)
    rel_tol = opts.get("float_relative_tolerance", tol)
    if abs_tol or rel_tol:
        return CheckerSpec("float", float(abs_tol or 0.0), float(rel_tol or 0.0))
    if "space_change_sensitive" in words:
        return CheckerSpec("exact")
    return CheckerSpec("token", case_sensitive="case_sensitive" in words)


def _validator(folder: Path, languages: dict[int, Language]) -> Program:
    """output_validators/<name>/ holding one source file, ICPC's convention (42/43)."""
    dirs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if len(dirs) != 1:
        raise ProblemError(f"{folder}: expected one validator directory, found {len(dirs)}")
    sources = sorted(p for p in dirs[0].iterdir() if p.is_file())
    if len(sources) != 1:
        raise ProblemError(f"{dirs[0]}: expected one source file, found {len(sources)}")
    try:
        lang_id = language_for(languages, sources[0].name)
    except ProblemError as e:
        raise ProblemError(f"{sources[0]}: {e}") from None
    return Program(_text(sources[0]), lang_id, "icpc")


def _text(path: Path) -> str:
    if path.stat().st_size > MAX_DATA_BYTES:
        raise ProblemError(f"{path}: over {MAX_DATA_BYTES} bytes")
    return path.read_text(encoding="utf-8", errors="replace")


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    text = path.read_text()
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        return parse_simple_yaml(text)
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ProblemError(f"{path}: must be a mapping")
    return data


def parse_simple_yaml(text: str) -> dict[str, Any]:
    """The YAML problem.yaml files use: nested mappings of scalars, '#' comments. PyYAML is
    used instead when it is installed."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        key, sep, value = line.strip().partition(":")
        if not sep:
            raise ProblemError(f"problem.yaml: cannot read {raw.strip()!r}")
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if value.strip():
            parent[key.strip()] = _scalar(value.strip())
        else:
            child: dict[str, Any] = {}
            parent[key.strip()] = child
            stack.append((indent, child))
    return root


def _scalar(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
