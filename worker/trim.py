"""What a result may keep: each case's output, all the cases' output, and the stored JSON's size."""

from __future__ import annotations

import base64
import json
from typing import Any

# What survives when nothing else fits: the verdict and its figures, never the output.
_ESSENTIAL = ("verdict", "score", "max_score", "time", "memory", "status", "timings", "attempts")
TOO_LARGE = "the result was cut to fit this worker's STOCKADE_MAX_RESULT_BYTES"


def kept_output(stdout: str, stderr: str, room: int) -> tuple[str, str, bool]:
    """The heads of stdout and stderr that fit `room` bytes (UTF-8) together, and whether
    anything was cut. Neither stream starves the other: each may have half the room, and
    what one leaves unused goes to the other (a crash's stderr survives a flood of stdout)."""
    out, err = stdout.encode(), stderr.encode()
    if len(out) + len(err) <= room:
        return stdout, stderr, False
    room = max(room, 0)
    keep_out = min(len(out), max(room // 2, room - len(err)))
    keep_err = min(len(err), room - keep_out)
    # "ignore": a cut through a multi-byte character drops its head rather than growing it.
    return _head(out, keep_out), _head(err, keep_err), True


def _head(data: bytes, n: int) -> str:
    return data[:n].decode("utf-8", "ignore")


def kept_bytes(stdout: bytes, stderr: bytes, room: int) -> tuple[bytes, bytes, bool]:
    """kept_output() on the exact bytes: the same shares of `room`; a cut through UTF-8
    text drops the cut character's head, and bytes that are not UTF-8 are cut as they are."""
    if len(stdout) + len(stderr) <= room:
        return stdout, stderr, False
    room = max(room, 0)
    keep_out = min(len(stdout), max(room // 2, room - len(stderr)))
    keep_err = min(len(stderr), room - keep_out)
    return _byte_head(stdout, keep_out), _byte_head(stderr, keep_err), True


def _byte_head(data: bytes, n: int) -> bytes:
    head = data[:n]
    if n < len(data) and _is_utf8(data):
        return head.decode("utf-8", "ignore").encode()
    return head


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def as_text(data: bytes) -> tuple[str, str | None]:
    """Output as text for every API, and its exact bytes in base64 when they are not UTF-8
    (None when the text is exact): a Judge0 base64 answer returns those bytes."""
    if _is_utf8(data):
        return data.decode(), None
    return data.decode("utf-8", "replace"), base64.b64encode(data).decode()


def json_size(value: Any) -> int:
    """Characters of `value` as the store writes it (json.dumps' defaults: \\u escapes)."""
    return len(json.dumps(value))


def fit_result(result: dict[str, Any], cap: int) -> dict[str, Any]:
    """`result` if its JSON fits `cap`, else a copy cut to fit, marked "truncated": case
    output first (last cases first), then the compile output and message, then whole cases
    after the deciding one, and at last everything but the verdict and its figures."""
    if json_size(result) <= cap:
        return result
    out = dict(result, truncated=True)
    cases = [dict(c) for c in out.get("cases") or []]
    out["cases"] = cases
    excess = json_size(out) - cap
    for case in reversed(cases):
        for key in ("stderr", "stdout"):
            text = case.get(key)
            if excess > 0 and isinstance(text, str) and text:
                excess -= json_size(text) - json_size("")
                case[key], case["truncated"] = "", True
                # The exact bytes go with their text: an answer never shows one without the other.
                excess -= json_size(case.pop(f"{key}_b64", None)) - json_size(None)
    if excess > 0 and out.pop("compile_output_b64", None) is not None:
        excess = json_size(out) - cap  # the lossy text stays, cut below if need be
    for key in ("compile_output", "message"):
        text = out.get(key)
        if excess > 0 and isinstance(text, str) and text:
            out[key] = _cut(text, json_size(text) - excess)
            excess = json_size(out) - cap
    deciding = next((i for i, c in enumerate(cases) if c.get("verdict") != "AC"), 0)
    while excess > 0 and len(cases) > deciding + 1:
        excess -= json_size(cases.pop()) + len(", ")
    if json_size(out) <= cap:
        return out
    bare = {k: out[k] for k in _ESSENTIAL if k in out}
    bare.update(cases=[], compile_output="", message=TOO_LARGE, truncated=True)
    return bare


def _cut(text: str, budget: int) -> str:
    """The longest head of `text` whose JSON takes at most `budget` characters."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if json_size(text[:mid]) <= budget:
            low = mid
        else:
            high = mid - 1
    return text[:low]
