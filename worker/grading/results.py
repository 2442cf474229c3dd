"""Gradescope's results.json: built from what the host observed, and validated field by field."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from worker.grading.fields import VISIBILITIES

STATUSES = ("passed", "failed")
OUTPUT_BYTES = 8192  # per test: feedback, not a log
_TEST_FIELDS = {
    "score",
    "max_score",
    "status",
    "name",
    "name_format",
    "number",
    "output",
    "output_format",
    "tags",
    "visibility",
    "extra_data",
}
_TOP_FIELDS = {
    "score",
    "max_score",
    "execution_time",
    "output",
    "output_format",
    "test_output_format",
    "test_name_format",
    "visibility",
    "stdout_visibility",
    "extra_data",
    "tests",
    "leaderboard",
}


@dataclass(frozen=True)
class ScoredTest:
    """One test's score as the host decided it."""

    number: str
    name: str
    score: float
    max_score: float
    visibility: str
    output: str = ""

    @property
    def passed(self) -> bool:
        return self.score >= self.max_score

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "number": self.number,
            "score": _round(self.score),
            "max_score": _round(self.max_score),
            "status": "passed" if self.passed else "failed",
            "output": clip(self.output),
            "visibility": self.visibility,
        }


@dataclass(frozen=True)
class Results:
    """A submission's results.json. `error` set means it could not be graded (the reason)."""

    tests: tuple[ScoredTest, ...] = ()
    output: str = ""
    visibility: str = "visible"
    execution_time: float = 0.0
    error: str = ""

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.max_score for t in self.tests)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "score": _round(self.score),
            "max_score": _round(self.max_score),
            "execution_time": round(self.execution_time, 3),
            "output": self.output,
            "visibility": self.visibility,
            "tests": [t.to_dict() for t in self.tests],
        }
        if self.error:
            out["extra_data"] = {"error": self.error}
        return out


def clip(text: str, limit: int = OUTPUT_BYTES) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore") + f"\n[... {len(data) - limit} bytes cut]"


def _round(x: float) -> float:
    return round(x, 4)


def validate(data: object) -> list[str]:
    """Every way `data` breaks Gradescope's results.json format, as 'field: rule' sentences
    (empty when valid). Unknown fields are refused: a typo must not silently drop a score."""
    if not isinstance(data, dict):
        return [f"results.json: must be a JSON object, got {type(data).__name__}"]
    errors = [f"{k}: unknown field" for k in data if k not in _TOP_FIELDS]
    tests = data.get("tests", [])
    if not isinstance(tests, list):
        return [*errors, "tests: must be a list"]
    if "score" not in data and not tests:
        errors.append("score: required when there are no tests")
    for key in ("score", "max_score", "execution_time"):
        if key in data and not _finite(data[key]):
            errors.append(f"{key}: must be a finite number, got {data[key]!r}")
    errors += _visibility_errors(data, "visibility", "")
    errors += _visibility_errors(data, "stdout_visibility", "")
    if "output" in data and not isinstance(data["output"], str):
        errors.append("output: must be a string")
    for i, t in enumerate(tests):
        errors += _test_errors(t, f"tests[{i}]")
    return errors


def _test_errors(t: object, at: str) -> list[str]:
    if not isinstance(t, dict):
        return [f"{at}: must be an object"]
    errors = [f"{at}.{k}: unknown field" for k in t if k not in _TEST_FIELDS]
    for key in ("score", "max_score"):
        if key in t and not _finite(t[key]):
            errors.append(f"{at}.{key}: must be a finite number, got {t[key]!r}")
    if "status" in t and t["status"] not in STATUSES:
        errors.append(f"{at}.status: must be passed or failed, got {t['status']!r}")
    if "score" not in t and "status" not in t:
        errors.append(f"{at}: needs a score or a status")
    for key in ("name", "output"):
        if key in t and not isinstance(t[key], str):
            errors.append(f"{at}.{key}: must be a string")
    if "number" in t and not isinstance(t["number"], str | int | float):
        errors.append(f"{at}.number: must be a string or a number")
    return errors + _visibility_errors(t, "visibility", f"{at}.")


def _visibility_errors(d: dict[str, Any], key: str, prefix: str) -> list[str]:
    if key in d and d[key] not in VISIBILITIES:
        return [f"{prefix}{key}: must be one of {', '.join(VISIBILITIES)}, got {d[key]!r}"]
    return []


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def dumps_dict(data: dict[str, Any], submission: str | None = None) -> str:
    """One JSON line; with `submission` (the --json form) its path is added."""
    if submission is not None:
        data = {**data, "submission": submission}
    return json.dumps(data)
