"""The box's one front door: a spec is validated once here, then run by its tier's backend."""

from __future__ import annotations

import os

from sandbox import cgroups, seccomp
from sandbox.backends.container.backend import ContainerBackend
from sandbox.config import HostConfig
from sandbox.errors import SpecError
from sandbox.images.store import LayerStore
from sandbox.result import BoxResult
from sandbox.spec import BoxSpec, validate
from sandbox.stdio import Stdio
from sandbox.tiers import Backends


class Launcher:
    """Long-lived: the host's cgroup manager, the layer store and the container tier are
    made once; the stronger tiers start on their first box."""

    def __init__(self, config: HostConfig | None = None) -> None:
        self.config = config or HostConfig.from_env()
        os.makedirs(self.config.run_dir, mode=0o700, exist_ok=True)
        self.cgroups = cgroups.probe()
        # Box cgroups are named <launcher pid>-<n>: those of a launcher that was killed go now.
        self.cgroups.sweep_stale()
        images = LayerStore(self.config.state_dir)
        # A store written by an older Stockade may hold set-uid files: fixed before any box.
        images.harden()
        self.container = ContainerBackend(self.config, self.cgroups, images)
        self.backends = Backends(self.config, images, self.cgroups)

    def close(self) -> None:
        self.backends.close()
        self.container.close()
        self.cgroups.close()

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def settle(self, timeout_s: float = 10.0) -> bool:
        """Wait until every finished container box's init and cgroup are gone."""
        return self.container.settle(timeout_s)

    def run(self, spec: BoxSpec, stdio: Stdio | None = None) -> BoxResult:
        """Run one box. `stdio` connects the program to pipes of the caller's instead of
        spec.stdin and the captured stdout (an interactor and its program, for one); the
        caller keeps its fds, the box gets duplicates."""
        problems = validate(spec)
        try:
            seccomp.filter_for(spec.profile, self.config.profiles_dir)
        except (OSError, ValueError) as e:
            problems.append(f"profile: no usable seccomp profile {spec.profile!r} ({e})")
        templates = self.container.templates
        if not templates.knows(spec.rootfs):
            known = ", ".join(templates.names())
            problems.append(f"rootfs: no image named {spec.rootfs!r} (known: {known})")
        if problems:
            raise SpecError(problems)
        if spec.tier == "container":
            return self.container.run(spec, stdio or Stdio())
        return self.backends.run(spec, stdio or Stdio())
