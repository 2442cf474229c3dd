"""Field checks of assignment.toml: each failure names the field and the rule."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from sandbox.sizes import parse_size
from sandbox.spec import MIB, Limits

# Gradescope's four visibilities (results.json "visibility").
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
_LIMIT_FIELDS = {
    "cpu_time_s": float,
    "wall_time_s": float,
    "memory": int,
    "pids": int,
    "output": int,
    "scratch": int,
}


class FieldError(Exception):
    """One field breaks one rule; the loader adds the file's name."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


def limits_of(raw: Any, where: str, base: Limits) -> Limits:
    """A [limits] table over `base`: sizes as "256M" or bytes, times in seconds."""
    if not isinstance(raw, dict):
        raise FieldError(where, "must be a table")
    only_known(where, raw, set(_LIMIT_FIELDS))
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("memory", "output", "scratch"):
            try:
                size = parse_size(value) if isinstance(value, str) else value
            except ValueError as e:
                raise FieldError(f"{where}.{key}", str(e)) from None
            if not is_number(size) or size < MIB:
                raise FieldError(f"{where}.{key}", f"must be a size of at least 1M, got {value!r}")
            values[f"{key}_bytes"] = int(size)
        elif not is_number(value) or value <= 0:
            raise FieldError(f"{where}.{key}", f"must be a number > 0, got {value!r}")
        else:
            values[key] = _LIMIT_FIELDS[key](value)
    if "wall_time_s" not in values and "cpu_time_s" in values:
        values["wall_time_s"] = max(base.wall_time_s, 2 * values["cpu_time_s"])
    return replace(base, **values)


def visibility_of(data: dict[str, Any], key: str, where: str = "") -> str:
    value = data.get(key, "visible")
    if value not in VISIBILITIES:
        at = f"{where}.{key}" if where else key
        raise FieldError(at, f"must be one of {', '.join(VISIBILITIES)}, got {value!r}")
    return str(value)


def string_field(data: dict[str, Any], key: str, default: str, where: str = "") -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        at = f"{where}.{key}" if where else key
        raise FieldError(at, f"must be a string, got {value!r}")
    return value


def only_known(where: str, data: dict[str, Any], known: set[str]) -> None:
    for key in data:
        if key not in known:
            raise FieldError(f"{where}.{key}" if where else key, "unknown field")


def is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
