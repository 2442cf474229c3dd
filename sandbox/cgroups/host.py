"""Which cgroup hierarchy this host has (read once per process) and the manager for it."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

from sandbox.cgroups.delegation import own_cgroup, this_placement, unit_of
from sandbox.cgroups.fs import CgroupOps, fail, read_file
from sandbox.cgroups.manager import (
    CgroupManager,
    HierarchyChoice,
    choose_hierarchy,
    parse_mountinfo,
)
from sandbox.cgroups.v1 import V1Manager
from sandbox.cgroups.v2 import V2Manager
from sandbox.errors import SandboxError

MOUNTINFO = "/proc/self/mountinfo"
SCOPE_PREFIX = "stockade-delegated-"  # the transient scopes delegated_scope_argv asks for


def probe(
    mountinfo: str = MOUNTINFO,
    root_override: Path | None = None,
    *,
    ops: CgroupOps | None = None,
) -> CgroupManager:
    """Pick v2 or v1 for this host and return its manager. root_override is prefixed to
    every mount point (a fake tree in tests)."""
    prefix = str(root_override) if root_override is not None else ""
    if mountinfo == MOUNTINFO and root_override is None:
        choice = _this_host()
    else:
        choice = _choose(mountinfo, prefix)
    if choice.version == 2:
        mount = prefix + choice.v2_mount
        # Only this host's own tree has a systemd to ask; a fake tree keeps the root.
        placement = this_placement(mount) if root_override is None else None
        return V2Manager(mount, ops, placement)
    return V1Manager({c: prefix + p for c, p in choice.v1_mounts.items()}, ops)


def delegated_scope_argv(argv: list[str]) -> list[str] | None:
    """The command line that re-runs argv in a transient scope with Delegate=yes, when this
    host's boxes need cgroup2 and this process sits in a systemd unit not delegated to it (a
    root shell's session scope); None when nothing needs to change, or when it cannot
    (no systemd-run, or argv already runs in such a scope: then probe() names the fix)."""
    try:
        choice = _this_host()
        if choice.version != 2:
            return None
        this_placement(choice.v2_mount)
        return None
    except SandboxError:
        pass
    _, unit = unit_of(own_cgroup(read_file("/proc/self/cgroup").decode()))
    if unit.startswith(SCOPE_PREFIX) or shutil.which("systemd-run") is None:
        return None
    scope = f"--unit={SCOPE_PREFIX}{os.getpid()}"
    return ["systemd-run", "--scope", "--quiet", scope, "-p", "Delegate=yes", "--", *argv]


@functools.cache
def _this_host() -> HierarchyChoice:
    """The host's hierarchy, read once per process: every manager made after shares it."""
    return _choose(MOUNTINFO, "")


def _choose(mountinfo: str, prefix: str) -> HierarchyChoice:
    try:
        with open(mountinfo) as f:
            mounts = parse_mountinfo(f.read())
    except OSError as e:
        raise fail(f"read({mountinfo})", e) from e
    v2_controllers: dict[str, frozenset[str]] = {}
    for m in mounts:
        if m.fstype == "cgroup2":
            try:
                with open(prefix + m.mount_point + "/cgroup.controllers") as f:
                    v2_controllers[m.mount_point] = frozenset(f.read().split())
            except OSError:
                v2_controllers[m.mount_point] = frozenset()
    return choose_hierarchy(mounts, v2_controllers)
