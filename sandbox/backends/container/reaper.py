"""Finishing boxes off the hot path: wait for init's exit, then remove the box's cgroup.

When the launcher has a box's result, every process in it is dead but init, which is inside
do_exit tearing down the box's mount namespace (an RCU grace period: milliseconds). Nobody
needs to wait for that but the cgroup's rmdir, so a thread does it."""

from __future__ import annotations

import os
import select
import signal
import threading
from collections import deque

from sandbox import cgroups

_KILL_AFTER_S = 2.0


class Reaper:
    def __init__(self) -> None:
        self._jobs: deque[tuple[int, cgroups.BoxCgroup]] = deque()
        self._cond = threading.Condition()
        self._busy = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="stockade-reaper", daemon=True)
        self._thread.start()

    def submit(self, pidfd: int, cgroup: cgroups.BoxCgroup) -> None:
        """Takes ownership of the pidfd and of the cgroup."""
        with self._cond:
            self._jobs.append((pidfd, cgroup))
            self._cond.notify_all()

    def settle(self, timeout_s: float = 10.0) -> bool:
        """Wait until every submitted box is gone (tests check host state after this)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._jobs and not self._busy, timeout_s)

    def close(self) -> None:
        self.settle()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or bool(self._jobs))
                if not self._jobs:
                    return
                pidfd, cgroup = self._jobs.popleft()
                self._busy += 1
            try:
                finish(pidfd, cgroup)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()


def finish(pidfd: int, cgroup: cgroups.BoxCgroup) -> None:
    """Wait for init to be gone (SIGKILL it if it lingers), then remove the cgroup."""
    try:
        ready, _, _ = select.select([pidfd], [], [], _KILL_AFTER_S)
        if not ready:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            select.select([pidfd], [], [], _KILL_AFTER_S)
    finally:
        os.close(pidfd)
        # destroy() kills whatever is still in the cgroup before it removes it.
        cgroup.destroy()
