"""A package's limits as the contest systems take them: stated, from DOMjudge's files, or
derived from the accepted submissions' slowest time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.jobs.packages.format import LEGACY, Meta, ProblemError

# Each version's defaults where problem.yaml says nothing (MiB and seconds).
_DEFAULTS: dict[str, dict[str, float]] = {
    LEGACY: {
        "time_multiplier": 5.0,
        "time_safety_margin": 2.0,
        "memory": 1024,
        "output": 8,
        "compilation_time": 60,
        "compilation_memory": 1024,
        "validation_time": 60,
        "validation_memory": 1024,
        "validation_output": 8,
    },
    "2023-07": {
        "ac_to_time_limit": 2.0,
        "time_limit_to_tle": 1.5,
        "memory": 2048,
        "output": 8,
        "compilation_time": 60,
        "compilation_memory": 2048,
        "validation_time": 60,
        "validation_memory": 2048,
        "validation_output": 8,
    },
}
# A derived limit never goes below this: a box's own start-up is measured too.
MIN_DERIVED_S = 0.2


@dataclass(frozen=True)
class PackageLimits:
    """Seconds and MiB. time_limit_s is None until derived from the accepted submissions."""

    time_limit_s: float | None
    time_source: str
    ac_to_time_limit: float
    time_limit_to_tle: float
    round_up: bool
    memory_mib: int
    output_mib: int
    compile_time_s: float
    compile_memory_mib: int
    validation_time_s: float
    validation_memory_mib: int
    validation_output_mib: int

    def derive(self, slowest_ac_s: float) -> float:
        """The limit from the slowest accepted run: legacy rounds up to whole seconds."""
        limit = max(slowest_ac_s, 0.0) * self.ac_to_time_limit
        if self.round_up:
            return float(max(1, math.ceil(limit)))
        return round(max(limit, MIN_DERIVED_S), 3)

    def tle_threshold(self, time_limit_s: float) -> float:
        """A time_limit_exceeded submission must be slower than this (the safety margin)."""
        return time_limit_s * self.time_limit_to_tle


def read_limits(directory: Path, meta: Meta, max_memory_mib: int) -> PackageLimits:
    """The limits of `meta` (problem.yaml) with the defaults of its version."""
    lim = meta.limits
    d = _DEFAULTS[meta.version]
    multipliers = lim.get("time_multipliers") or {}
    if not isinstance(multipliers, dict):
        raise ProblemError("problem.yaml: limits.time_multipliers must be a mapping")
    if meta.version == LEGACY:
        ac_to_tl = _number(lim, "time_multiplier", d)
        tl_to_tle = _number(lim, "time_safety_margin", d)
    else:
        ac_to_tl = _number(multipliers, "ac_to_time_limit", d)
        tl_to_tle = _number(multipliers, "time_limit_to_tle", d)
    time_limit, source = _stated_time_limit(directory, lim)
    return PackageLimits(
        time_limit_s=time_limit,
        time_source=source,
        ac_to_time_limit=ac_to_tl,
        time_limit_to_tle=tl_to_tle,
        round_up=meta.version == LEGACY,
        memory_mib=_memory(lim, "memory", d, max_memory_mib),
        output_mib=int(_number(lim, "output", d)),
        compile_time_s=_number(lim, "compilation_time", d),
        compile_memory_mib=_memory(lim, "compilation_memory", d, max_memory_mib),
        validation_time_s=_number(lim, "validation_time", d),
        validation_memory_mib=_memory(lim, "validation_memory", d, max_memory_mib),
        validation_output_mib=int(_number(lim, "validation_output", d)),
    )


def _stated_time_limit(directory: Path, lim: dict[str, Any]) -> tuple[float | None, str]:
    """problem.yaml's limits.time_limit, else DOMjudge's .timelimit, else its
    domjudge-problem.ini `timelimit`; none of them: None (derived later)."""
    if "time_limit" in lim:
        return _positive(lim["time_limit"], "problem.yaml: limits.time_limit"), "problem.yaml"
    path = directory / ".timelimit"
    if path.is_file():
        return _positive(path.read_text().strip(), str(path)), ".timelimit"
    path = directory / "domjudge-problem.ini"
    if path.is_file():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == "timelimit":
                return _positive(value.strip().strip("'\""), str(path)), "domjudge-problem.ini"
    return None, "derived"


def _positive(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ProblemError(f"{where}: the time limit must be a number, got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise ProblemError(f"{where}: the time limit must be a positive number, got {value!r}")
    return number


def _number(table: dict[str, Any], key: str, defaults: dict[str, float]) -> float:
    value = table.get(key, defaults[key])
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ProblemError(f"problem.yaml: limits.{key} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise ProblemError(f"problem.yaml: limits.{key} must be positive, got {value!r}")
    return number


def _memory(table: dict[str, Any], key: str, defaults: dict[str, float], max_mib: int) -> int:
    """A stated value above the operator's maximum is refused, never quietly lowered; a
    version's default above it is lowered (the package asked for nothing)."""
    if key not in table:
        return int(min(defaults[key], max_mib))
    mib = _number(table, key, defaults)
    if mib > max_mib:
        raise ProblemError(
            f"problem.yaml: limits.{key} asks for {mib:g} MiB; this judge allows at most "
            f"{max_mib} MiB (STOCKADE_PACKAGE_MAX_MEMORY_MIB)"
        )
    return max(4, math.ceil(mib))
