"""What runsc says about a box: its own error (JSON log) and a Sentry crash (panic log)."""

from __future__ import annotations

import json
import os

_FATAL = ("panic:", "fatal error:", "runtime:")


def runsc_error(box_dir: str) -> str:
    """runsc's own error (its log is JSON lines only when it failed; warnings are not
    logged at the default level)."""
    for line in reversed(_read_text(os.path.join(box_dir, "runsc.log")).splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg", line))
    return ""


def sentry_panic(box_dir: str) -> str:
    """The Go runtime's first fatal line in the panic log (which also carries rate-limited
    notices, e.g. a raw socket refused), or "" when the Sentry did not crash."""
    for line in _read_text(os.path.join(box_dir, "panic.log")).splitlines():
        if line.startswith(_FATAL):
            return line.strip()
    return ""


def _read_text(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read(1 << 16)
    except FileNotFoundError:
        return ""
