"""The cgroup interface (BoxCgroup, CgroupManager), mountinfo parsing and the v1/v2 probe."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Protocol

from sandbox.cgroups.fs import fail
from sandbox.errors import SandboxError

# Every box cgroup lives under this node at each hierarchy's root, never beside the
# machine's own cgroups.
PARENT = "stockade"
V1_REQUIRED = ("memory", "pids", "cpuacct")
V2_REQUIRED = ("memory", "pids")
# Names of v1 controllers, to tell them from other mount options in mountinfo's super
# options ("rw,cpu,cpuacct", "rw,name=systemd", "rw,memory").
V1_CONTROLLERS = frozenset(
    {
        *("blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory"),
        *("misc", "net_cls", "net_prio", "perf_event", "pids", "rdma"),
    }
)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class CgroupLimits:
    """Per-box cgroup limits. memory_bytes counts swap too."""

    memory_bytes: int
    pids: int

    def __post_init__(self) -> None:
        if self.memory_bytes < 1 << 20:
            raise ValueError(f"memory_bytes: {self.memory_bytes} is below 1 MiB")
        if self.pids < 1:
            raise ValueError(f"pids: {self.pids} is below 1")


class BoxCgroup(Protocol):
    """One fresh cgroup per box (a directory in each hierarchy), never reused."""

    name: str
    dir_name: str  # the directory under stockade/ in each hierarchy

    def join_fds(self) -> list[int]:
        """Write-only fds on cgroup.procs, opened in the parent; the forked child passes
        them to join_in_child() before pivot_root and before dropping privileges."""
        ...

    def set_limits(self, limits: CgroupLimits) -> None:
        """Replace the limits (a warm box made with placeholders gets its own)."""
        ...

    def cpu_time_s(self) -> float:
        """CPU time of every task that ever ran in the box, cumulative."""
        ...

    def memory_peak_bytes(self) -> int:
        """High-water mark of memory (+swap) charged to the box."""
        ...

    def shmem_bytes(self) -> int:
        """Shared memory (tmpfs, memfds) charged to the box now: memory.stat's "shmem"."""
        ...

    def oom_killed(self) -> bool:
        """True once the kernel's OOM killer has killed a task of the box."""
        ...

    def kill_all(self) -> None:
        """SIGKILL every task in the box, a racing fork bomb included; returns once the
        cgroup is empty."""
        ...

    def destroy(self) -> None:
        """kill_all if needed, remove every directory, close fds. Idempotent."""
        ...


class CgroupManager(Protocol):
    """Makes box cgroups under the stockade/ node of each hierarchy."""

    version: int
    relative_parent: str  # that node's path from the hierarchy's root, e.g. /stockade

    def create(self, name: str, limits: CgroupLimits) -> BoxCgroup: ...

    def parents(self) -> list[str]: ...

    def sweep_stale(self) -> list[str]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CgroupMount:
    """One cgroup or cgroup2 line of /proc/self/mountinfo."""

    fstype: str
    mount_point: str
    root: str
    controllers: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class HierarchyChoice:
    """What probe() decided: v2 at one mount point, or v1 with a mount per controller."""

    version: int
    v2_mount: str = ""
    v1_mounts: dict[str, str] = field(default_factory=dict)


def _unescape(field_text: str) -> str:
    # proc(5): mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_text)


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """The cgroup and cgroup2 mounts in mountinfo text, in file order (pure)."""
    mounts: list[CgroupMount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        ctls = frozenset(tail[2].split(",")) & V1_CONTROLLERS  # empty for cgroup2
        mounts.append(CgroupMount(tail[0], _unescape(fields[4]), _unescape(fields[3]), ctls))
    return mounts


def choose_hierarchy(
    mounts: list[CgroupMount], v2_controllers: dict[str, frozenset[str]]
) -> HierarchyChoice:
    """v2 when a cgroup2 mount offers memory and pids, else v1 when memory, pids and cpuacct
    are mounted; otherwise raise, naming what is missing (pure). v2_controllers maps each
    cgroup2 mount point to the words of its cgroup.controllers."""
    problems: list[str] = []
    for m in mounts:
        if m.fstype != "cgroup2":
            continue
        missing = [c for c in V2_REQUIRED if c not in v2_controllers.get(m.mount_point, ())]
        if not missing:
            return HierarchyChoice(2, v2_mount=m.mount_point)
        problems.append(f"cgroup2 at {m.mount_point} lacks {', '.join(missing)}")
    if not any(m.fstype == "cgroup2" for m in mounts):
        problems.append("no cgroup2 mount")
    v1: dict[str, str] = {}
    for m in mounts:
        for ctl in sorted(m.controllers):
            v1.setdefault(ctl, m.mount_point)  # the first mount of a controller wins
    missing = [c for c in V1_REQUIRED if c not in v1]
    if not missing:
        keep = (*V1_REQUIRED, "freezer")
        return HierarchyChoice(1, v1_mounts={c: p for c, p in v1.items() if c in keep})
    problems.append(f"cgroup v1 lacks {', '.join(missing)}")
    raise SandboxError("cgroup", "probe", detail="; ".join(problems))


def check_name(name: str) -> None:
    """A box name is one plain directory level: no slash, not hidden. (A name equal to an
    interface file, e.g. "pids.max", fails at mkdir with EEXIST.)"""
    if not _NAME.fullmatch(name):
        raise SandboxError("cgroup", f"mkdir({name!r})", detail="name must match " + _NAME.pattern)


def join_in_child(fds: list[int]) -> None:
    """Child side: move this process into the box; writing "0" moves the writer itself
    (cgroup-v1/cgroups.rst, cgroup-v2.rst "cgroup.procs"). The parent opened the fds, so
    no path is needed, and since 5.16 the kernel checks the opener's credentials, not the
    writer's. Call it first in the child: before unshare(CLONE_NEWCGROUP), so the
    namespace's root is the box; before the child allocates, since charges stay where they
    were made (memory.rst 8: move_charge_at_immigrate is off); and before execve, which
    closes these O_CLOEXEC fds."""
    for fd in fds:
        try:
            os.write(fd, b"0")
        except OSError as e:
            raise fail("write(cgroup.procs)", e) from e
