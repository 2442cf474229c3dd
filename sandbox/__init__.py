"""Stockade's box: run one untrusted program with a narrowed view of the machine."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.api import default_launcher, run
    from sandbox.errors import SandboxError, SpecError
    from sandbox.launcher import Launcher
    from sandbox.result import BoxResult, Status
    from sandbox.spec import BoxSpec, FileIn, Limits

# Imported lazily so that the zygote (python -m sandbox.zygote) loads only what it uses.
_EXPORTS = {
    "BoxResult": "sandbox.result",
    "BoxSpec": "sandbox.spec",
    "FileIn": "sandbox.spec",
    "Launcher": "sandbox.launcher",
    "Limits": "sandbox.spec",
    "SandboxError": "sandbox.errors",
    "SpecError": "sandbox.errors",
    "Status": "sandbox.result",
    "default_launcher": "sandbox.api",
    "run": "sandbox.api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
