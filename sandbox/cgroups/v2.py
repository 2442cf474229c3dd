"""cgroup v2 backend: per box, one directory under <base>/stockade/, base being the root or a
systemd unit's delegated cgroup (sandbox/cgroups/delegation.py)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from sandbox.cgroups.base import BaseCgroup, BaseManager, Blank, Plan
from sandbox.cgroups.delegation import Placement, move_to_leaf
from sandbox.cgroups.fs import (
    FREEZE_TIMEOUT_S,
    KILL_TIMEOUT_S,
    CgroupOps,
    drain,
    fail,
    kill_listed,
    parse_int,
    parse_keyed,
    read_file,
    wait_until,
    write_file,
)
from sandbox.cgroups.manager import PARENT, V2_REQUIRED, CgroupLimits
from sandbox.errors import SandboxError

# cpu is optional: cpu.stat's usage_usec exists in every cgroup even without it (cgroup-v2.rst
# "Core Interface Files"), and enabling it can fail (e.g. realtime tasks outside the root).
OPTIONAL = ("cpu",)


def plan_enable(enabled: frozenset[str], available: frozenset[str]) -> list[tuple[bytes, bool]]:
    """(subtree_control write, mandatory) for the controllers not yet enabled (pure). One
    write per controller: a write is all-or-nothing, so an optional one must not sink the
    others."""
    writes = [(b"+" + c.encode(), True) for c in V2_REQUIRED if c not in enabled]
    writes += [(b"+" + c.encode(), False) for c in OPTIONAL if c in available and c not in enabled]
    return writes


def plan_limits(
    limits: CgroupLimits, has_swap: bool, previous: CgroupLimits | None = None
) -> list[tuple[str, bytes]]:
    """(file, value) in write order (pure). previous: the limits in force, or None for a
    new cgroup; unchanged values are skipped."""
    writes: list[tuple[str, bytes]] = []
    if previous is None or limits.memory_bytes != previous.memory_bytes:
        writes.append(("memory.max", b"%d" % limits.memory_bytes))
    if previous is None and has_swap:
        # memory.max does not count swap; swap.max 0 makes memory_bytes the whole budget.
        writes.append(("memory.swap.max", b"0"))
    if previous is None or limits.pids != previous.pids:
        writes.append(("pids.max", b"%d" % limits.pids))
    return writes


class V2Manager(BaseManager):
    """Box cgroups under <base>/stockade/ in the unified hierarchy; placement says where base
    is (the root unless given: fake trees, a private cgroup namespace)."""

    version = 2

    def __init__(
        self, mount: str, ops: CgroupOps | None = None, placement: Placement | None = None
    ) -> None:
        super().__init__(ops or CgroupOps())
        placement = placement or Placement("")
        base = mount + placement.base
        words = frozenset(read_file(base + "/cgroup.controllers").decode().split())
        missing = [c for c in V2_REQUIRED if c not in words]
        if missing:
            detail = f"cgroup2 at {base} lacks {', '.join(missing)}"
            raise SandboxError("cgroup", "probe", detail=detail)
        # The unit's own processes go to its leaf before the unit gives its children any
        # controller; nothing above base is ever written.
        move_to_leaf(mount, placement, self._ops)
        self.placement = placement
        self.relative_parent = placement.base + "/" + PARENT
        self._parent = mount + self.relative_parent
        _enable(base, words)
        try:
            self._ops.mkdir(self._parent)
        except FileExistsError:
            pass
        except OSError as e:
            raise fail(f"mkdir({self._parent})", e) from e
        _enable(self._parent, words)
        # By kernel version: cgroup.kill 5.14, memory.peak 5.19; memory.swap.max only with
        # swap accounting. stockade/ has the same interface files a box will have.
        self.has_kill = os.path.exists(self._parent + "/cgroup.kill")
        self.has_peak = os.path.exists(self._parent + "/memory.peak")
        self.has_swap = os.path.exists(self._parent + "/memory.swap.max")

    def _dirs_for(self, dir_name: str) -> dict[str, str]:
        return {"": self._parent + "/" + dir_name}

    def _limit_writes(
        self, dirs: dict[str, str], limits: CgroupLimits, previous: CgroupLimits | None
    ) -> list[tuple[str, bytes]]:
        plan = plan_limits(limits, self.has_swap, previous)
        return [(dirs[""] + "/" + f, v) for f, v in plan]

    def _wrap(self, name: str, blank: Blank) -> V2Cgroup:
        plan = self._plan_for(blank)
        return V2Cgroup(name, blank, self._ops, self._forget, plan, self)


def _enable(path: str, available: frozenset[str]) -> None:
    """Turn on the box controllers for path's children (cgroup-v2.rst "Enabling and
    Disabling"): a controller reaches stockade/<box> only if it is enabled in the
    subtree_control of both the root and stockade/."""
    control = path + "/cgroup.subtree_control"
    enabled = frozenset(read_file(control).decode().split())
    for word, mandatory in plan_enable(enabled, available):
        try:
            write_file(control, word)
        except SandboxError as e:
            if not mandatory:
                continue
            if e.errno == errno.EBUSY:
                # cgroup-v2.rst "No Internal Process Constraint": a non-root cgroup can
                # give domain controllers to children only while it holds no process.
                raise SandboxError(
                    e.step, e.syscall, e.errno, f"{path} holds processes; use a leaf cgroup"
                ) from e
            raise


class V2Cgroup(BaseCgroup):
    """One box: a single directory in the unified hierarchy."""

    def __init__(
        self,
        name: str,
        blank: Blank,
        ops: CgroupOps,
        forget: Callable[[str], None],
        plan: Plan,
        features: V2Manager,
    ) -> None:
        super().__init__(name, blank, ops, forget, plan)
        self._dir = blank.dirs[""]
        self._has_kill = features.has_kill
        self._has_peak = features.has_peak
        self._sampled_peak = 0

    def cpu_time_s(self) -> float:
        return parse_keyed(self._read(self._dir + "/cpu.stat")).get("usage_usec", 0) / 1e6

    def memory_peak_bytes(self) -> int:
        if self._has_peak:
            return parse_int(self._read(self._dir + "/memory.peak"))
        # Before 5.19 there is no high-water mark: report the highest memory.current seen,
        # so the launcher's wait loop should call this while the box runs.
        current = parse_int(self._read(self._dir + "/memory.current"))
        self._sampled_peak = max(self._sampled_peak, current)
        return self._sampled_peak

    def shmem_bytes(self) -> int:
        # cgroup-v2.rst memory.stat: "shmem", swap-backed memory (tmpfs, shm, memfds).
        return parse_keyed(self._read(self._dir + "/memory.stat")).get("shmem", 0)

    def oom_killed(self) -> bool:
        # cgroup-v2.rst memory.events: oom_kill counts processes the OOM killer killed.
        return parse_keyed(self._read(self._dir + "/memory.events")).get("oom_kill", 0) > 0

    def kill_all(self) -> None:
        procs = self._dir + "/cgroup.procs"
        if self._has_kill:
            # cgroup-v2.rst cgroup.kill: SIGKILL to the whole subtree in one step; the
            # kernel also stops forks in progress from escaping it.
            write_file(self._dir + "/cgroup.kill", b"1")
        elif os.path.exists(self._dir + "/cgroup.freeze"):
            freeze, events = self._dir + "/cgroup.freeze", self._dir + "/cgroup.events"
            write_file(freeze, b"1")
            try:
                frozen = lambda: parse_keyed(read_file(events)).get("frozen") == 1  # noqa: E731
                wait_until(frozen, FREEZE_TIMEOUT_S)
                # Unlike v1, a v2-frozen task acts on SIGKILL at once (cgroup-v2.rst).
                kill_listed(procs, self._ops)
            finally:
                write_file(freeze, b"0")
        drain(procs, self._ops, KILL_TIMEOUT_S)
