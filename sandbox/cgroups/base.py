"""What v1 and v2 share: making a blank, applying limits, stat reads and destroy."""

from __future__ import annotations

import contextlib
import errno
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.cgroups.fs import (
    O_WRITE,
    RMDIR_TIMEOUT_S,
    CgroupOps,
    fail,
    open_read,
    pread_small,
    rmdir_all,
)
from sandbox.cgroups.manager import CgroupLimits, check_name

# (new limits, limits in force or None) -> (path, value) writes in a safe order.
Plan = Callable[[CgroupLimits, CgroupLimits | None], list[tuple[str, bytes]]]


@dataclass
class Blank:
    """A fresh box cgroup with no limits yet: its directories (one per controller, or one in
    v2), its join fds, and the limit and stat files opened on first use, kept open."""

    dir_name: str
    dirs: dict[str, str]
    paths: list[str]  # distinct directories in removal order
    join: list[int]
    fds: dict[str, int] = field(default_factory=dict)

    def close_fds(self) -> None:
        for fd in [*self.join, *self.fds.values()]:
            os.close(fd)
        self.join = []
        self.fds = {}


def discard(blank: Blank, ops: CgroupOps) -> None:
    """Remove a blank that never held a process."""
    blank.close_fds()
    rmdir_all(blank.paths, ops, lambda: None, 0.1)


class BaseCgroup(ABC):
    """One box's cgroup; v1 and v2 add the stat files and kill_all."""

    def __init__(
        self,
        name: str,
        blank: Blank,
        ops: CgroupOps,
        forget: Callable[[str], None],
        plan: Plan,
    ) -> None:
        self.name = name
        self.dir_name = blank.dir_name
        self.paths = tuple(blank.paths)
        self._blank = blank
        self._ops = ops
        self._forget = forget
        self._plan = plan
        self._limits: CgroupLimits | None = None
        self._destroyed = False

    def join_fds(self) -> list[int]:
        return list(self._blank.join)

    def set_limits(self, limits: CgroupLimits) -> None:
        """Write the limits (create() does it first; a warm box made with placeholder
        limits gets its own here). Only changed values are written, and each file stays
        open, so the box's own limits cost one pwrite each on the hot path."""
        for path, value in self._plan(limits, self._limits):
            fd = self._blank.fds.get(path)
            if fd is None:
                fd = self._blank.fds[path] = _open(path, O_WRITE)
            try:
                os.pwrite(fd, value, 0)
                # A no-op on cgroupfs; in a fake tree of plain files it drops a longer old value.
                os.ftruncate(fd, len(value))
            except OSError as e:
                raise fail(f"write({path}, {value.decode()})", e) from e
        self._limits = limits

    @abstractmethod
    def cpu_time_s(self) -> float: ...

    @abstractmethod
    def memory_peak_bytes(self) -> int: ...

    @abstractmethod
    def shmem_bytes(self) -> int:
        """Shared memory charged to the box now: tmpfs pages and memfds, such as the gVisor
        Sentry's memory file, which holds every page of the program's (gvisor_watch.py)."""
        ...

    @abstractmethod
    def oom_killed(self) -> bool: ...

    @abstractmethod
    def kill_all(self) -> None: ...

    def _read(self, path: str) -> bytes:
        fd = self._blank.fds.get(path)
        if fd is None:
            fd = self._blank.fds[path] = open_read(path)
        return pread_small(fd, path)

    def _remove(self) -> None:
        # rmdir fails with EBUSY while a task is attached (cgroup-v1/cgroups.rst 2.3,
        # cgroup-v2.rst "Creating and Removing"): kill then, and retry briefly.
        rmdir_all(list(self.paths), self._ops, self.kill_all, RMDIR_TIMEOUT_S)

    def destroy(self) -> None:
        if self._destroyed:
            return
        try:
            self._remove()
        finally:
            self._blank.close_fds()
        self._destroyed = True
        self._forget(self.dir_name)


class BaseManager(ABC):
    """create() and close(); v1/v2 say where directories go and which files to write."""

    version = 0

    def __init__(self, ops: CgroupOps) -> None:
        self._ops = ops
        self._live: dict[str, BaseCgroup] = {}

    # -- what v1 and v2 provide --
    @abstractmethod
    def _dirs_for(self, dir_name: str) -> dict[str, str]: ...

    @abstractmethod
    def _limit_writes(
        self, dirs: dict[str, str], limits: CgroupLimits, previous: CgroupLimits | None
    ) -> list[tuple[str, bytes]]: ...

    @abstractmethod
    def _wrap(self, name: str, blank: Blank) -> BaseCgroup: ...

    # -- shared --
    def _make_blank(self, dir_name: str) -> Blank:
        """mkdir each directory and open its cgroup.procs for the child to join."""
        dirs = self._dirs_for(dir_name)
        blank = Blank(dir_name, dirs, list(dict.fromkeys(dirs.values())), [])
        made: list[str] = []
        try:
            for path in blank.paths:
                try:
                    self._ops.mkdir(path)
                except OSError as e:
                    why = "a box cgroup is never reused" if e.errno == errno.EEXIST else ""
                    raise fail(f"mkdir({path})", e, why) from e
                made.append(path)
            for path in blank.paths:
                blank.join.append(_open(path + "/cgroup.procs", O_WRITE))
        except BaseException:
            blank.close_fds()
            for path in reversed(made):
                with contextlib.suppress(OSError):
                    self._ops.rmdir(path)
            raise
        return blank

    def create(self, name: str, limits: CgroupLimits) -> BaseCgroup:
        check_name(name)
        blank = self._make_blank(name)
        cg = self._wrap(name, blank)
        try:
            cg.set_limits(limits)
        except BaseException:
            discard(blank, self._ops)
            raise
        self._live[blank.dir_name] = cg
        return cg

    def parents(self) -> list[str]:
        """The stockade/ nodes this manager's box cgroups go under: one per v1 hierarchy, one
        on v2."""
        return sorted({os.path.dirname(p) for p in self._dirs_for("x").values()})

    def sweep_stale(self) -> list[str]:
        """Remove the box cgroups of launchers that died without cleaning up (named
        <pid>-<n> with that pid gone). rmdir refuses a cgroup that still holds a task, so a
        live box is never lost; another live launcher's cgroups are not even tried."""
        removed: list[str] = []
        for parent in self.parents():
            for name in os.listdir(parent):
                owner, dash, seq = name.partition("-")
                if not (dash and owner.isdigit() and seq.isdigit()) or pid_alive(int(owner)):
                    continue
                try:
                    self._ops.rmdir(os.path.join(parent, name))
                except OSError:
                    continue
                removed.append(os.path.join(parent, name))
        return removed

    def close(self) -> None:
        """Destroy boxes still alive. The stockade/ nodes stay: other launchers on the host
        share them."""
        for cg in list(self._live.values()):
            cg.destroy()

    def _plan_for(self, blank: Blank) -> Plan:
        return lambda limits, previous: self._limit_writes(blank.dirs, limits, previous)

    def _forget(self, dir_name: str) -> None:
        self._live.pop(dir_name, None)


def pid_alive(pid: int) -> bool:
    """Whether a process of this pid exists (a launcher that made cgroups, say)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _open(path: str, flags: int) -> int:
    try:
        return os.open(path, flags)
    except OSError as e:
        raise fail(f"open({path})", e) from e
