"""The stronger tiers behind one interface: each backend runs a BoxSpec in its own isolation
and says, before any box, whether this host can serve it and why not."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from sandbox import cgroups
from sandbox.backends.gvisor import backend as gvisor
from sandbox.backends.microvm import backend as microvm
from sandbox.config import HostConfig
from sandbox.images import Images
from sandbox.result import BoxResult, failed
from sandbox.spec import BoxSpec
from sandbox.stdio import Stdio


class Backend(Protocol):
    """One tier's runner. run() never raises for the program's behaviour: a sandbox failure
    is an XX result whose message names the step and the call that failed."""

    def run(self, spec: BoxSpec, stdio: Stdio) -> BoxResult: ...

    def close(self) -> None: ...


# Each stronger tier: its probe (None when the tier works here, else the reason it does not)
# and its backend's constructor.
PROBES: dict[str, Callable[[HostConfig], str | None]] = {
    "gvisor": gvisor.probe,
    "microvm": microvm.probe,
}
_MAKERS: dict[str, Callable[[HostConfig, Images | None, cgroups.CgroupManager], Backend]] = {
    "gvisor": gvisor.GvisorBackend,
    "microvm": microvm.MicrovmBackend,
}


def probe(tier: str, config: HostConfig) -> str | None:
    """Why `tier` cannot run boxes on this host, or None when it can."""
    if tier == "container":
        return None
    if tier not in PROBES:
        return f"no tier named {tier!r}"
    try:
        return PROBES[tier](config)
    except Exception as e:  # a broken probe must not stop a worker: the tier is just not served
        return f"the {tier} probe failed: {e!r}"


class Backends:
    """The launcher's stronger tiers: each probed once and started on its first box."""

    def __init__(
        self, config: HostConfig, images: Images | None, cgroup_manager: cgroups.CgroupManager
    ) -> None:
        self.config = config
        self.images = images
        self.cgroups = cgroup_manager
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
            backend = _MAKERS[tier](self.config, self.images, self.cgroups)
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
