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
        make: Callable[[WarmKey], WarmBox],
        discard: Callable[[WarmBox], None],
        sizes: dict[WarmKey, int],
    ) -> None:
        self._make = make
        self._discard = discard
        self._sizes = {k: n for k, n in sizes.items() if n > 0}
        self._ready: dict[WarmKey, deque[WarmBox]] = {k: deque() for k in self._sizes}
        self._cond = threading.Condition()
        self._closed = False
        self.error: SandboxError | None = None
        self._thread = threading.Thread(target=self._fill, name="stockade-warm", daemon=True)
        if self._sizes:
            self._thread.start()

    def take(self, key: WarmKey) -> WarmBox:
        with self._cond:
            ready = self._ready.get(key)
            if ready:
                box = ready.popleft()
                self._cond.notify_all()
                return box
        return self._make(key)

    def pids(self) -> set[int]:
        """The inits waiting warm (host pid namespace)."""
        with self._cond:
            return {box.init.pid for ready in self._ready.values() for box in ready}

    def _missing(self) -> WarmKey | None:
        for key, size in self._sizes.items():
            if len(self._ready[key]) < size:
                return key
        return None

    def wait_full(self, timeout_s: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: self._missing() is None or self.error is not None, timeout_s
            )

    def _fill(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._missing() is not None)
                key = self._missing()
                if self._closed or key is None:
                    return
            try:
                box = self._make(key)
            except SandboxError as e:
                with self._cond:
                    self.error = e  # take() then prepares on its own thread and reports it
                    self._cond.notify_all()
                return
            with self._cond:
                if not self._closed:
                    self._ready[key].append(box)
                    self._cond.notify_all()
                    continue
            self._discard(box)
            return

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for ready in self._ready.values():
            while ready:
                self._discard(ready.popleft())
