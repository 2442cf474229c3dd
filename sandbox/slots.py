"""The box slot pool: one unprivileged uid/gid per concurrent box, locked like isolate's boxes."""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    index: int
    uid: int
    gid: int


class SlotPool:
    """Hands out slots. flock(2) on one file per slot keeps separate launcher processes
    (several Celery workers on one host) from ever running two boxes under one uid."""

    def __init__(self, lock_dir: str, first_uid: int = 60000, count: int = 64) -> None:
        os.makedirs(lock_dir, mode=0o700, exist_ok=True)
        self.first_uid = first_uid
        self.count = count
        self._fds = [
            os.open(
                os.path.join(lock_dir, f"{i}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
            for i in range(count)
        ]
        self._busy: set[int] = set()
        self._lock = threading.Lock()
        self._next = 0

    def acquire(self) -> Slot:
        with self._lock:
            for k in range(self.count):
                i = (self._next + k) % self.count
                if i in self._busy:
                    continue
                try:
                    fcntl.flock(self._fds[i], fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                self._busy.add(i)
                # Prefer the slot just released: its template is warm (see launcher).
                self._next = i
                uid = self.first_uid + i
                return Slot(i, uid, uid)
        raise RuntimeError(f"all {self.count} box slots are busy")

    def release(self, slot: Slot) -> None:
        with self._lock:
            fcntl.flock(self._fds[slot.index], fcntl.LOCK_UN)
            self._busy.discard(slot.index)
            self._next = slot.index

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
