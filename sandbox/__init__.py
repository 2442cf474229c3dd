"""Stockade's box: run one untrusted program with a narrowed view of the machine."""

from __future__ import annotations

import importlib

# Not typing.TYPE_CHECKING: importing typing would put a megabyte more into the zygote, whose
# pages every box's init copies. mypy honours a module constant of this name as well.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from sandbox.api import default_launcher as default_launcher
    from sandbox.api import run as run
    from sandbox.errors import SandboxError as SandboxError
    from sandbox.errors import SpecError as SpecError
    from sandbox.launcher import Launcher as Launcher
    from sandbox.result import BoxResult as BoxResult
    from sandbox.result import Status as Status
    from sandbox.spec import BoxSpec as BoxSpec
    from sandbox.spec import FileIn as FileIn
    from sandbox.spec import Limits as Limits

# Imported lazily so that the zygote (python -m sandbox.backends.container.zygote) loads only
# what it uses.
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


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
