"""The Python face of the box: run(spec) -> BoxResult through a shared, long-lived Launcher."""

from __future__ import annotations

import atexit
import threading

from sandbox.launcher import Launcher
from sandbox.result import BoxResult
from sandbox.spec import BoxSpec

_default: Launcher | None = None
_lock = threading.Lock()


def default_launcher() -> Launcher:
    """The process-wide launcher, created on first use (never at import time)."""
    global _default
    with _lock:
        if _default is None:
            _default = Launcher()
            atexit.register(_close_default)
        return _default


def _close_default() -> None:
    global _default
    with _lock:
        if _default is not None:
            _default.close()
            _default = None


def run(spec: BoxSpec) -> BoxResult:
    """Run one program in a fresh box and return its outcome."""
    return default_launcher().run(spec)
