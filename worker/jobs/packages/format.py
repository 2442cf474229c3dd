"""The problem package format, legacy and 2023-07: problem.yaml, testdata.yaml, the test tree."""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

LEGACY = "legacy"
V2023 = "2023-07"
MAX_DATA_BYTES = 64 << 20


class ProblemError(ValueError):
    """The package is malformed; the message names the file."""


@dataclass(frozen=True)
class TestData:
    """One directory's testdata.yaml merged over its parent's (the format's inheritance)."""

    __test__ = False

    on_reject: str = "break"  # break: a rejected case ends its group; continue: it does not
    grading: str = "default"
    grader_flags: tuple[str, ...] = ()
    accept_score: float = 1.0
    reject_score: float = 0.0
    score_range: tuple[float, float] = (-math.inf, math.inf)
    output_validator_flags: tuple[str, ...] = ()
    input_validator_flags: tuple[str, ...] = ()
    input_validator_named: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def input_flags(self, validator: str) -> tuple[str, ...]:
        """The flags of one input validator: its own by name, else everyone's."""
        return dict(self.input_validator_named).get(validator, self.input_validator_flags)

    def aggregation(self) -> str:
        """sum (the default), min, max or avg: `grading` names it, or a word of grader_flags."""
        for word in (self.grading, *self.grader_flags):
            if word in ("sum", "min", "max", "avg"):
                return word
        return "sum"

    def verdict_rule(self) -> str:
        """first_error (the default) or worst_error, from grader_flags."""
        return "worst_error" if "worst_error" in self.grader_flags else "first_error"


@dataclass(frozen=True)
class Case:
    """One .in with its .ans (and the name it is reported by: its path under data/)."""

    name: str
    input: Path
    answer: Path
    testdata: TestData


@dataclass(frozen=True)
class Group:
    """A directory of data/: its cases and subgroups in name order, one testdata.yaml."""

    name: str
    testdata: TestData
    items: tuple[Case | Group, ...] = ()

    def cases(self) -> list[Case]:
        out: list[Case] = []
        for item in self.items:
            out.extend(item.cases() if isinstance(item, Group) else [item])
        return out


@dataclass(frozen=True)
class Meta:
    """What problem.yaml says, both versions read into one shape."""

    version: str
    name: str
    interactive: bool
    scoring: bool
    custom_output: bool
    validator_flags: tuple[str, ...]
    limits: dict[str, Any] = field(default_factory=dict)
    languages: tuple[str, ...] = ()


def read_meta(directory: Path) -> Meta:
    """problem.yaml by its declared problem_format_version (none declared: legacy)."""
    data = read_yaml(directory / "problem.yaml")
    version = str(data.get("problem_format_version", LEGACY))
    if version not in (LEGACY, V2023, "draft"):
        raise ProblemError(f"problem.yaml: problem_format_version {version!r} is not known")
    version = V2023 if version == "draft" else version
    limits = data.get("limits") or {}
    if not isinstance(limits, dict):
        raise ProblemError("problem.yaml: limits must be a mapping")
    flags = tuple(_words(data.get("validator_flags", ""), "validator_flags"))
    name = data.get("name", directory.name)
    if isinstance(name, dict):  # 2023-07: a name per language
        name = name.get("en", next(iter(name.values()), directory.name))
    langs = data.get("languages", "all")
    languages = tuple(_words(langs, "languages")) if langs != "all" else ()
    if version == V2023:
        types = data.get("type", "pass-fail")
        kinds = set(_words(types, "type"))
        unknown = kinds - {"pass-fail", "scoring", "interactive", "multi-pass", "submit-answer"}
        if unknown:
            raise ProblemError(f"problem.yaml: type: unknown {sorted(unknown)}")
        if kinds & {"multi-pass", "submit-answer"}:
            raise ProblemError(f"problem.yaml: type {sorted(kinds)}: not supported")
        custom = (directory / "output_validator").is_dir() or (
            directory / "output_validators"
        ).is_dir()
        return Meta(
            version,
            str(name),
            "interactive" in kinds,
            "scoring" in kinds,
            custom or "interactive" in kinds,
            flags,
            limits,
            languages,
        )
    validation = _words(data.get("validation", "default"), "validation")
    custom = validation[:1] == ["custom"]
    return Meta(
        version,
        str(name),
        custom and "interactive" in validation,
        str(data.get("type", "pass-fail")) == "scoring" or "score" in validation,
        custom,
        flags,
        limits,
        languages,
    )


def read_tests(data: Path) -> Group:
    """data/ as a tree: sample first, then secret, then any other group; .in/.ans pairs."""
    root = _testdata(data, TestData())
    if not data.is_dir():
        raise ProblemError(f"{data}: no data/ directory")
    names = sorted(p.name for p in data.iterdir() if p.is_dir())
    order = [n for n in ("sample", "secret") if n in names]
    items = tuple(_group(data / n, n, root) for n in order)
    group = Group("data", root, items)
    if not group.cases():
        raise ProblemError(f"{data}: no .in/.ans pairs in sample/ or secret/")
    return group


def _group(folder: Path, name: str, parent: TestData) -> Group:
    settings = _testdata(folder, parent)
    if name == "data/sample" or name == "sample":
        # The samples count for the verdict, never for the score (both versions).
        settings = replace(settings, accept_score=0.0)
    items: list[Case | Group] = []
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            items.append(_group(path, f"{name}/{path.name}", settings))
        elif path.suffix == ".in" and path.is_file():
            ans = path.with_suffix(".ans")
            if not ans.is_file():
                raise ProblemError(f"{path}: no {ans.name} beside it")
            items.append(Case(f"{name}/{path.stem}", path, ans, settings))
    return Group(name, settings, tuple(items))


def _testdata(folder: Path, parent: TestData) -> TestData:
    path = folder / "testdata.yaml"
    if not path.is_file():
        return parent
    data = read_yaml(path)
    try:
        return _merge(data, parent, path)
    except (ValueError, TypeError) as e:
        if isinstance(e, ProblemError):
            raise
        raise ProblemError(f"{path}: {type(e).__name__}: {e}") from None


def _merge(data: dict[str, Any], parent: TestData, path: Path) -> TestData:
    # Keys of neither version's judging (full_feedback, static_validation, ...) are left
    # alone: a package written for another system still judges here.
    out = parent
    if "on_reject" in data:
        rule = str(data["on_reject"])
        if rule not in ("break", "continue"):
            raise ProblemError(f"{path}: on_reject must be break or continue, got {rule!r}")
        out = replace(out, on_reject=rule)
    if "grading" in data:
        out = replace(out, grading=str(data["grading"]))
    if "grader_flags" in data:
        out = replace(out, grader_flags=tuple(_words(data["grader_flags"], "grader_flags")))
    if "accept_score" in data:
        out = replace(out, accept_score=float(data["accept_score"]))
    if "reject_score" in data:
        out = replace(out, reject_score=float(data["reject_score"]))
    if "range" in data:
        low, high = (float(w) for w in _words(data["range"], "range"))
        out = replace(out, score_range=(low, high))
    for key in ("output_validator_flags", "output_validator_args"):
        if key in data:
            out = replace(out, output_validator_flags=tuple(_words(data[key], key)))
    for name in ("input_validator_flags", "input_validator_args"):
        value = data.get(name)
        if isinstance(value, dict):  # by validator name (both versions allow it)
            named = tuple((str(k), tuple(_words(v, f"{name}.{k}"))) for k, v in value.items())
            out = replace(out, input_validator_flags=(), input_validator_named=named)
        elif name in data:
            out = replace(out, input_validator_flags=tuple(_words(value, name)))
    return out


def _words(value: Any, what: str) -> list[str]:
    """A YAML value that is a string of words or a list of them (2023-07 allows both)."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str | int | float):
        return str(value).split()
    raise ProblemError(f"{what}: must be a string or a list, got {value!r}")


def read_text(path: Path) -> str:
    if path.stat().st_size > MAX_DATA_BYTES:
        raise ProblemError(f"{path}: over {MAX_DATA_BYTES} bytes")
    return path.read_text(encoding="utf-8", errors="replace")


def read_bytes(path: Path) -> bytes:
    if path.stat().st_size > MAX_DATA_BYTES:
        raise ProblemError(f"{path}: over {MAX_DATA_BYTES} bytes")
    return path.read_bytes()


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    text = path.read_text()
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        return parse_simple_yaml(text)
    data = yaml.safe_load(text)
    if data is None:
        return {}
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
