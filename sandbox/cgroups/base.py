"""What v1 and v2 share: making a blank, applying limits, stat reads and destroy."""

from __future__ import annotations

import contextlib
import errno
import os
from abc import ABC, abstractmethod
from collections.abc import Callable

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
from sandbox.cgroups.pool import Blank, BlankPool, discard

Retire = Callable[[Callable[[], None]], None]
# (new limits, limits in force or None) -> (path, value) writes in a safe order.
Plan = Callable[[CgroupLimits, CgroupLimits | None], list[tuple[str, bytes]]]
_ANY = CgroupLimits(1 << 20, 1)  # to learn which files the limits go to; values unused


class BaseCgroup(ABC):
    """One box's cgroup; v1 and v2 add the stat files and kill_all."""

    def __init__(
        self,
        name: str,
        blank: Blank,
        ops: CgroupOps,
        retire: Retire | None,
        forget: Callable[[str], None],
        plan: Plan,
    ) -> None:
        self.name = name
        self.dir_name = blank.dir_name
        self.paths = tuple(blank.paths)
        self._blank = blank
        self._ops = ops
        self._retire = retire
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
        if self._retire is None:
            try:
                self._remove()
            finally:
                self._blank.close_fds()
        else:
            # Pooled: no task may outlive destroy(), so check (one pread on an fd opened
            # ahead) and kill now if needed; only the rmdirs move to the pool's thread.
            if self._read(self.paths[0] + "/cgroup.procs").strip():
                self.kill_all()
            self._blank.close_fds()
            self._retire(self._remove)
        self._destroyed = True
        self._forget(self.dir_name)


class BaseManager(ABC):
    """create() and close() around an optional BlankPool; v1/v2 say where directories go,
    which files to write and which to open ahead."""

    version = 0

    def __init__(self, ops: CgroupOps) -> None:
        self._ops = ops
        self._live: dict[str, BaseCgroup] = {}
        self._pool: BlankPool | None = None

    def _start_pool(self, size: int) -> None:
        """Call last in the subclass's __init__: the thread uses _make_blank at once."""
        if size > 0:
            self._pool = BlankPool(lambda n: self._make_blank(n, prepare=True), self._ops, size)

    # -- what v1 and v2 provide --
    @abstractmethod
    def _dirs_for(self, dir_name: str) -> dict[str, str]: ...

    @abstractmethod
    def _limit_writes(
        self, dirs: dict[str, str], limits: CgroupLimits, previous: CgroupLimits | None
    ) -> list[tuple[str, bytes]]: ...

    @abstractmethod
    def _read_ahead(self, dirs: dict[str, str]) -> list[str]: ...

    @abstractmethod
    def _wrap(self, name: str, blank: Blank) -> BaseCgroup: ...

    # -- shared --
    def _make_blank(self, dir_name: str, prepare: bool) -> Blank:
        """mkdir each directory and open its cgroup.procs for the child to join; with
        prepare (the pool's thread), also open limit and stat files ahead of use."""
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
            if prepare:
                for path, _ in self._limit_writes(dirs, _ANY, None):
                    blank.fds[path] = _open(path, O_WRITE | os.O_TRUNC)
                for path in [blank.paths[0] + "/cgroup.procs", *self._read_ahead(dirs)]:
                    blank.fds[path] = open_read(path)
        except BaseException:
            blank.close_fds()
            for path in reversed(made):
                with contextlib.suppress(OSError):
                    self._ops.rmdir(path)
            raise
        return blank

    def create(self, name: str, limits: CgroupLimits) -> BaseCgroup:
        check_name(name)
        blank = self._pool.take() if self._pool is not None else None
        if blank is None:
            blank = self._make_blank(name, prepare=False)
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
        """Destroy boxes still alive and empty the pool. The stockade/ nodes stay: other
        launchers on the host share them."""
        for cg in list(self._live.values()):
            cg.destroy()
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def wait_pool(self, timeout_s: float = 1.0) -> bool:
        """With a pool: block until it is full; True at once without one."""
        return self._pool is None or self._pool.wait_full(timeout_s)

    def _retirer(self) -> Retire | None:
        return self._pool.retire if self._pool is not None else None

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
