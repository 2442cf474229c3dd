"""Stockade's box: run one untrusted program with a narrowed view of the machine."""

from sandbox.api import default_launcher, run
from sandbox.errors import SandboxError, SpecError
from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec, FileIn, Limits

__all__ = [
    "BoxResult",
    "BoxSpec",
    "FileIn",
    "Launcher",
    "Limits",
    "SandboxError",
    "SpecError",
    "Status",
    "default_launcher",
    "run",
]
