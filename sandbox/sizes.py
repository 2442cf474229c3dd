"""Sizes with K, M and G suffixes (binary: 1K = 1024 bytes), as isolate and Docker take them."""

from __future__ import annotations

import re

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'256M' -> 268435456. Raises ValueError naming the rule on anything else."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (a number with an optional K, M or G suffix)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.upper()])
