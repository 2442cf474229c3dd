"""cgroup v1 backend: per box, one directory in each of memory, pids, cpuacct and freezer."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from sandbox.cgroups.base import BaseCgroup, BaseManager, Blank, Plan
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
from sandbox.cgroups.manager import PARENT, CgroupLimits
from sandbox.errors import SandboxError

# Join and removal order. memory comes first: every task of the box is in it, so its rmdir
# is the first to report EBUSY, while the freezer (needed by kill_all) still exists.
ORDER = ("memory", "pids", "cpuacct", "freezer")


def plan_parent() -> list[tuple[str, str, bytes, bool]]:
    """(controller, file, value, mandatory) written once on the stockade/ node. A new memcg
    copies swappiness and oom_kill_disable from its parent (mem_cgroup_css_alloc), so
    setting them here covers every box without a write on the hot path."""
    return [
        # memory.rst 5.3 (swappiness): 0 keeps a box's anonymous memory out of swap.
        ("memory", "memory.swappiness", b"0", False),
        # memory.rst 10 (OOM Control): 0 = the OOM killer acts, rather than the box hanging.
        ("memory", "memory.oom_control", b"0", True),
    ]


def plan_limits(
    limits: CgroupLimits, has_memsw: bool, previous: CgroupLimits | None = None
) -> list[tuple[str, str, bytes]]:
    """(controller, file, value) in write order (pure). previous: the limits in force, or
    None for a new cgroup (both memory limits unlimited); unchanged values are skipped."""
    writes: list[tuple[str, str, bytes]] = []
    if previous is None or limits.memory_bytes != previous.memory_bytes:
        memory = b"%d" % limits.memory_bytes
        writes.append(("memory", "memory.limit_in_bytes", memory))
        if has_memsw:
            # memory.rst 2.4: memsw.limit may never be below limit (EINVAL), so it is
            # raised before limit and lowered after it. Equal values mean memory and swap
            # together may not pass memory_bytes.
            memsw = ("memory", "memory.memsw.limit_in_bytes", memory)
            growing = previous is not None and limits.memory_bytes > previous.memory_bytes
            writes.insert(0 if growing else 1, memsw)
    if previous is None or limits.pids != previous.pids:
        writes.append(("pids", "pids.max", b"%d" % limits.pids))
    return writes


class V1Manager(BaseManager):
    """Box cgroups under <mount>/stockade/ in each v1 hierarchy."""

    version = 1

    def __init__(self, mounts: Mapping[str, str], ops: CgroupOps | None = None) -> None:
        super().__init__(ops or CgroupOps())
        self.relative_parent = "/" + PARENT
        self._parents = {c: mounts[c] + "/" + PARENT for c in ORDER if c in mounts}
        for path in dict.fromkeys(self._parents.values()):
            try:
                self._ops.mkdir(path)
            except FileExistsError:
                pass
            except OSError as e:
                raise fail(f"mkdir({path})", e) from e
        for ctl, file, value, mandatory in plan_parent():
            try:
                write_file(self._parents[ctl] + "/" + file, value)
            except SandboxError:
                if mandatory:
                    raise
        # memory.rst 2.4: the memsw files exist only with swap accounting
        # (swapaccount=1); without them swap is not capped, only swappiness 0 applies.
        self.has_memsw = os.path.exists(self._parents["memory"] + "/memory.memsw.limit_in_bytes")

    def _dirs_for(self, dir_name: str) -> dict[str, str]:
        return {c: p + "/" + dir_name for c, p in self._parents.items()}

    def _limit_writes(
        self, dirs: dict[str, str], limits: CgroupLimits, previous: CgroupLimits | None
    ) -> list[tuple[str, bytes]]:
        plan = plan_limits(limits, self.has_memsw, previous)
        return [(dirs[c] + "/" + f, v) for c, f, v in plan]

    def _wrap(self, name: str, blank: Blank) -> V1Cgroup:
        plan = self._plan_for(blank)
        return V1Cgroup(name, blank, self._ops, self._forget, plan, self.has_memsw)


def _peak(has_memsw: bool) -> str:
    # memory.rst 5.2: memsw.max_usage counts memory + swap; without memsw, memory alone.
    return "memory.memsw.max_usage_in_bytes" if has_memsw else "memory.max_usage_in_bytes"


class V1Cgroup(BaseCgroup):
    """One box: a directory per v1 controller."""

    def __init__(
        self,
        name: str,
        blank: Blank,
        ops: CgroupOps,
        forget: Callable[[str], None],
        plan: Plan,
        has_memsw: bool,
    ) -> None:
        super().__init__(name, blank, ops, forget, plan)
        self._dirs = blank.dirs
        self._peak = self._dirs["memory"] + "/" + _peak(has_memsw)

    def cpu_time_s(self) -> float:
        # cpuacct.rst: cpuacct.usage is the CPU time (ns) of every task of the group,
        # user and system, kept after the tasks exit.
        return parse_int(self._read(self._dirs["cpuacct"] + "/cpuacct.usage")) / 1e9

    def memory_peak_bytes(self) -> int:
        return parse_int(self._read(self._peak))

    def shmem_bytes(self) -> int:
        # memory.rst 5.2: memory.stat's "shmem" (this group's own; a box has no children).
        stat = self._read(self._dirs["memory"] + "/memory.stat")
        return parse_keyed(stat).get("shmem", 0)

    def oom_killed(self) -> bool:
        # With memsw set, memory.failcnt stays 0 on an OOM kill (the charge fails on the
        # memsw counter); the oom_kill count in memory.oom_control (4.13+) is reliable.
        text = self._read(self._dirs["memory"] + "/memory.oom_control")
        return parse_keyed(text).get("oom_kill", 0) > 0

    def kill_all(self) -> None:
        freezer = self._dirs.get("freezer")
        if freezer is not None:
            state = freezer + "/freezer.state"
            write_file(state, b"FROZEN")
            try:
                # freezer-subsystem.rst: the state reads FREEZING until every task is in
                # the refrigerator; a frozen task can neither fork nor exit, so the pid
                # list is complete and no pid can be reused under us.
                wait_until(lambda: read_file(state).strip() == b"FROZEN", FREEZE_TIMEOUT_S)
                kill_listed(freezer + "/cgroup.procs", self._ops)
            finally:
                # A v1-frozen task sleeps in TASK_FROZEN, which SIGKILL does not wake:
                # it dies when thawed (seen on 6.18: state D until THAWED).
                write_file(state, b"THAWED")
        # Without a freezer (or for a task that was mid-join), kill what is listed
        # until nothing is; each pass shrinks the set.
        drain(self._dirs["memory"] + "/cgroup.procs", self._ops, KILL_TIMEOUT_S)
