"""The stronger tiers behind one interface: each backend runs a BoxSpec in its own isolation
and says, before any box, whether this host can serve it and why not."""

from __future__ import annotations

import importlib
import threading
import time
from typing import Protocol

from sandbox.config import HostConfig
from sandbox.result import BoxResult, failed
from sandbox.spec import BoxSpec
from sandbox.stdio import Stdio
from sandbox.templates import Images


class Backend(Protocol):
    """One tier's runner. run() never raises for the program's behaviour: a sandbox failure
    is an XX result whose message names the step and the call that failed."""

    def run(self, spec: BoxSpec, stdio: Stdio) -> BoxResult: ...

    def close(self) -> None: ...


# Each module has a class taking (HostConfig, Images | None) and a function
# probe(HostConfig) -> str | None: None when the tier works here, else the reason it does not.
MODULES = {
    "gvisor": ("sandbox.backends.gvisor", "GvisorBackend"),
    "microvm": ("sandbox.backends.microvm", "MicrovmBackend"),
}


def probe(tier: str, config: HostConfig) -> str | None:
    """Why `tier` cannot run boxes on this host, or None when it can."""
    if tier == "container":
        return None
    if tier not in MODULES:
        return f"no tier named {tier!r}"
    module_name, _ = MODULES[tier]
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        return f"the {tier} backend is not installed ({e})"
    try:
        reason: str | None = module.probe(config)
    except Exception as e:  # a broken probe must not stop a worker: the tier is just not served
        return f"the {tier} probe failed: {e!r}"
    return reason


class Backends:
    """The launcher's stronger tiers: each probed once and started on its first box."""

    def __init__(self, config: HostConfig, images: Images | None) -> None:
        self.config = config
        self.images = images
        self._lock = threading.Lock()
        self._started: dict[str, Backend] = {}
        self._refused: dict[str, str] = {}

    def get(self, tier: str) -> Backend | str:
        """The tier's backend, or the reason this host cannot serve it."""
        with self._lock:
            if tier in self._started:
                return self._started[tier]
            if tier in self._refused:
                return self._refused[tier]
            reason = probe(tier, self.config)
            if reason is not None:
                self._refused[tier] = reason
                return reason
            module_name, class_name = MODULES[tier]
            backend: Backend = getattr(importlib.import_module(module_name), class_name)(
                self.config, self.images
            )
            self._started[tier] = backend
            return backend

    def run(self, spec: BoxSpec, stdio: Stdio) -> BoxResult:
        started = time.monotonic()
        backend = self.get(spec.tier)
        if isinstance(backend, str):
            message = f"tier: {spec.tier} is not available on this host: {backend}"
            return failed(message, time.monotonic() - started, spec.tier)
        return backend.run(spec, stdio)

    def close(self) -> None:
        with self._lock:
            started, self._started = self._started, {}
        for backend in started.values():
            backend.close()
