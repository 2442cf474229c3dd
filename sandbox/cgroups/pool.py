"""Blank cgroups made ahead by a background thread, and removal of used ones off the hot path."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.cgroups.fs import CgroupOps, rmdir_all
from sandbox.errors import SandboxError

log = logging.getLogger(__name__)
RETRY_AFTER_ERROR_S = 1.0


@dataclass
class Blank:
    """A fresh box cgroup with no limits yet: its directories (one per controller, or one in
    v2), its join fds, and files opened ahead (limit files to write, stat files to read)."""

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


class BlankPool:
    """Keeps `size` blanks ready and runs queued removals, on one daemon thread. A blank is
    handed out once and its directories are removed after use, so no box ever sees a cgroup
    another box used (its counters, peak and oom_kill all start at zero). The thread makes
    only syscalls on its own fds and paths and holds the lock only to touch the queues.

    Opt-in (probe(pool_size=N)): on the development VM it halves the hot-path cost of
    create+destroy (mkdir and open on cgroupfs are the expensive part) but, sharing the GIL
    with the launcher, it widens the p95. A process that forks boxes with a raw clone
    through ctypes.CDLL (which drops the GIL) must not run it: the child could be born
    with the GIL held by this thread."""

    def __init__(self, make: Callable[[str], Blank], ops: CgroupOps, size: int) -> None:
        self._make = make
        self._ops = ops
        self._size = size
        self._ready: deque[Blank] = deque()
        self._jobs: deque[Callable[[], None]] = deque()
        self._failed: list[Callable[[], None]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._paused_until = 0.0
        self._seq = 0
        self._prefix = f"pool-{os.getpid()}-"
        self._thread = threading.Thread(target=self._run, name="stockade-cgroup-pool", daemon=True)
        self._thread.start()

    def take(self) -> Blank | None:
        """A ready blank, or None when the thread has fallen behind (make one inline)."""
        with self._cond:
            blank = self._ready.popleft() if self._ready else None
            self._cond.notify_all()
        return blank

    def wait_full(self, timeout_s: float) -> bool:
        """Block until `size` blanks are ready (a launcher warming up, tests)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._ready) >= self._size, timeout_s)

    def retire(self, job: Callable[[], None]) -> None:
        """Run a removal on the thread; inline once the pool is closed."""
        with self._cond:
            if not self._closed:
                self._jobs.append(job)
                self._cond.notify_all()
                return
        job()

    def close(self) -> None:
        """Stop the thread, finish every queued removal, remove unused blanks. Raises the
        first removal that still fails."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        first: SandboxError | None = None
        for job in [*self._failed, *self._jobs]:
            try:
                job()
            except SandboxError as e:
                first = first or e
        self._failed.clear()
        self._jobs.clear()
        while self._ready:
            discard(self._ready.popleft(), self._ops)
        if first is not None:
            raise first

    def _idle(self) -> bool:
        if self._closed or self._jobs:
            return False
        return len(self._ready) >= self._size or time.monotonic() < self._paused_until

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._idle():
                    self._cond.wait(timeout=max(0.0, self._paused_until - time.monotonic()) or None)
                if self._closed:
                    return
                job = self._jobs.popleft() if self._jobs else None
            if job is not None:
                # Removals first: they give back kernel memory and pids before new ones.
                try:
                    job()
                except SandboxError as e:
                    log.warning("cgroup removal failed, retried at close: %s", e)
                    self._failed.append(job)
                continue
            self._seq += 1
            try:
                blank = self._make(self._prefix + str(self._seq))
            except SandboxError as e:
                if e.errno != errno.EEXIST:  # EEXIST: a stale directory; take the next name
                    log.warning("cgroup pool paused: %s", e)
                    self._paused_until = time.monotonic() + RETRY_AFTER_ERROR_S
                continue
            with self._cond:
                self._ready.append(blank)
                self._cond.notify_all()
