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
from sandbox.backends.container.zygote import WarmInit
from sandbox.errors import SandboxError
from sandbox.slots import Slot

_WAIT_PENDING_S = 0.5
_RETRY_S = 1.0


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
    key's boxes are all taken, prepares one on the caller's thread; a key missed that way
    is then kept warm too (one box), up to `learned` keys, the least recently used going
    first: a judge's compile boxes and image boxes warm up after their first use."""

    def __init__(
        self,
        start: Callable[[WarmKey], WarmBox],
        finish: Callable[[WarmBox], None],
        discard: Callable[[WarmBox], None],
        sizes: dict[WarmKey, int],
        learned: int = 4,
    ) -> None:
        self._start = start
        self._finish = finish
        self._discard = discard
        self._sizes = {k: n for k, n in sizes.items() if n > 0}
        self._fixed = set(self._sizes)
        self._learned: list[WarmKey] = []  # most recently used last
        self._max_learned = learned
        self._ready: dict[WarmKey, deque[WarmBox]] = {k: deque() for k in self._sizes}
        self._pending: dict[WarmKey, int] = dict.fromkeys(self._sizes, 0)
        self._cond = threading.Condition()
        self._closed = False
        self.error: SandboxError | None = None
        self._thread = threading.Thread(target=self._fill, name="stockade-warm", daemon=True)
        if self._sizes or self._max_learned:
            self._thread.start()

    def take(self, key: WarmKey) -> WarmBox:
        with self._cond:
            self._learn(key)
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

    def _learn(self, key: WarmKey) -> None:
        """Called with the lock held: keep `key` warm from now on (see the class doc)."""
        if key in self._fixed or not self._max_learned:
            return
        if key in self._learned:
            self._learned.remove(key)
            self._learned.append(key)
            return
        if len(self._learned) >= self._max_learned:
            old = self._learned.pop(0)
            del self._sizes[old]
            stale = self._ready.pop(old)
            threading.Thread(target=lambda: [self._discard(b) for b in stale], daemon=True).start()
        self._learned.append(key)
        self._sizes[key] = 1
        self._ready.setdefault(key, deque())
        self._pending.setdefault(key, 0)
        self._cond.notify_all()

    def cgroup_names(self) -> set[str]:
        """The cgroups of the boxes waiting warm."""
        with self._cond:
            return {box.cgroup.dir_name for ready in self._ready.values() for box in ready}

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
            failed = self._prepare_all(keys)
            if not failed:
                continue
            with self._cond:
                self.error = failed[0][1]  # take() prepares on its own thread and says why
                for key, _ in failed:
                    if key in self._learned:  # a key that fails is no longer kept warm
                        self._learned.remove(key)
                        del self._sizes[key]
                        self._ready.pop(key, None)
                self._cond.notify_all()
                # A default key failing (a broken host) must not spin: wait, then retry.
                self._cond.wait_for(lambda: self._closed, _RETRY_S)

    def _prepare_all(self, keys: list[WarmKey]) -> list[tuple[WarmKey, SandboxError]]:
        """Start every missing box, then finish them in order; return the failures."""
        failed: list[tuple[WarmKey, SandboxError]] = []
        started: list[WarmBox] = []
        for key in keys:
            try:
                started.append(self._start(key))
            except SandboxError as e:
                failed.append((key, e))
                with self._cond:
                    self._pending[key] -= 1
                    self._cond.notify_all()
        for box in started:
            try:
                self._finish(box)  # on failure it gives the box's parts back itself
                ok = True
            except SandboxError as e:
                failed.append((box.key, e))
                ok = False
            with self._cond:
                self._pending[box.key] -= 1
                keep = ok and not self._closed and box.key in self._sizes
                if keep:
                    self._ready[box.key].append(box)
                self._cond.notify_all()
            if ok and not keep:
                self._discard(box)
        return failed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for ready in self._ready.values():
            while ready:
                self._discard(ready.popleft())
