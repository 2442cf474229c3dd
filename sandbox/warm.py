"""Warm boxes: inits cloned and prepared ahead of time, each with its own fresh cgroup.

Moving a process into a v1 cgroup waits for an RCU grace period (cgroup_threadgroup_rwsem),
1 to 20 ms on a busy host, and building a box's mounts and identity takes most of a
millisecond more. A thread pays for both here, off the hot path. A box still gets fresh
namespaces, a fresh cgroup and a fresh scratch layer; they were only made a moment earlier."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sandbox import cgroups
from sandbox.errors import SandboxError
from sandbox.slots import Slot
from sandbox.zygote import WarmInit

_WAIT_PENDING_S = 0.5


@dataclass(frozen=True)
class WarmKey:
    """What a prepared box is prepared for: root file system, scratch layer, seccomp profile."""

    rootfs: str
    scratch_bytes: int
    scratch_inodes: int
    profile: str


@dataclass
class WarmBox:
    key: WarmKey
    init: WarmInit
    cgroup: cgroups.BoxCgroup
    slot: Slot


class WarmPool:
    """Keeps sizes[key] boxes ready for each key. take() with another key, or when that
    key's boxes are all taken, prepares one on the caller's thread."""

    def __init__(
        self,
        start: Callable[[WarmKey], WarmBox],
        finish: Callable[[WarmBox], None],
        discard: Callable[[WarmBox], None],
        sizes: dict[WarmKey, int],
    ) -> None:
        self._start = start
        self._finish = finish
        self._discard = discard
        self._sizes = {k: n for k, n in sizes.items() if n > 0}
        self._ready: dict[WarmKey, deque[WarmBox]] = {k: deque() for k in self._sizes}
        self._pending: dict[WarmKey, int] = dict.fromkeys(self._sizes, 0)
        self._cond = threading.Condition()
        self._closed = False
        self.error: SandboxError | None = None
        self._thread = threading.Thread(target=self._fill, name="stockade-warm", daemon=True)
        if self._sizes:
            self._thread.start()

    def take(self, key: WarmKey) -> WarmBox:
        with self._cond:
            ready = self._ready.get(key)
            # One being prepared is nearer ready than one not started: wait for it a while.
            if ready is not None and not ready and self._pending[key]:
                self._cond.wait_for(lambda: bool(ready) or self._closed, _WAIT_PENDING_S)
            if ready:
                box = ready.popleft()
                self._cond.notify_all()
                return box
        box = self._start(key)
        self._finish(box)
        return box

    def pids(self) -> set[int]:
        """The inits waiting warm (host pid namespace)."""
        with self._cond:
            return {box.init.pid for ready in self._ready.values() for box in ready}

    def _missing(self) -> list[WarmKey]:
        return [
            key
            for key, size in self._sizes.items()
            for _ in range(size - len(self._ready[key]) - self._pending[key])
        ]

    def wait_full(self, timeout_s: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: (
                    (not self._missing() and not any(self._pending.values()))
                    or self.error is not None
                ),
                timeout_s,
            )

    def _fill(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or bool(self._missing()))
                if self._closed:
                    return
                keys = self._missing()
                for key in keys:
                    self._pending[key] += 1
            try:
                self._prepare_all(keys)
            except SandboxError as e:
                with self._cond:
                    self.error = e  # take() then prepares on its own thread and reports it
                    self._cond.notify_all()
                return

    def _prepare_all(self, keys: list[WarmKey]) -> None:
        """Start every missing box, then finish them in order."""
        started: list[WarmBox] = []
        try:
            for key in keys:
                started.append(self._start(key))
        finally:
            with self._cond:
                for key in keys[len(started) :]:
                    self._pending[key] -= 1
                self._cond.notify_all()
        error: SandboxError | None = None
        for box in started:
            try:
                self._finish(box)  # on failure it gives the box's parts back itself
                ok = True
            except SandboxError as e:
                error, ok = error or e, False
            with self._cond:
                self._pending[box.key] -= 1
                keep = ok and not self._closed
                if keep:
                    self._ready[box.key].append(box)
                self._cond.notify_all()
            if ok and not keep:
                self._discard(box)
        if error is not None:
            raise error

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for ready in self._ready.values():
            while ready:
                self._discard(ready.popleft())
