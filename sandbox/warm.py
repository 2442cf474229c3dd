"""Warm boxes: inits cloned ahead of time, each already in a fresh cgroup of its own.

Moving a process into a v1 cgroup waits for an RCU grace period (cgroup_threadgroup_rwsem),
which costs 1 to 20 ms on a busy host. A thread pays that here, off the hot path: each warm
init joins a cgroup made for it alone and then waits for its plan. A box still gets fresh
namespaces and a fresh cgroup; they were only made a moment earlier."""

from __future__ import annotations

import os
import threading
from collections import deque
from dataclasses import dataclass

from sandbox import cgroups
from sandbox.child import send_join
from sandbox.errors import SandboxError
from sandbox.zygote import WarmInit, Zygote

# Placeholder limits until the box's own are written; tight, so an idle init holds nothing.
_IDLE = cgroups.CgroupLimits(memory_bytes=64 << 20, pids=1)


@dataclass
class WarmBox:
    init: WarmInit
    cgroup: cgroups.BoxCgroup

    def discard(self) -> None:
        self.init.discard()
        self.cgroup.destroy()


class WarmPool:
    """Keeps `size` warm boxes ready; take() never waits for a grace period unless empty."""

    def __init__(self, zygote: Zygote, manager: cgroups.CgroupManager, size: int) -> None:
        self._zygote = zygote
        self._manager = manager
        self._size = max(0, size)
        self._ready: deque[WarmBox] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._seq = 0
        self._error: SandboxError | None = None
        self._thread = threading.Thread(target=self._fill, name="stockade-warm", daemon=True)
        if self._size:
            self._thread.start()

    def take(self) -> WarmBox:
        with self._cond:
            if self._ready:
                box = self._ready.popleft()
                self._cond.notify()
                return box
        return self._make()

    def wait_full(self, timeout_s: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self._ready) >= self._size, timeout_s)

    def _make(self) -> WarmBox:
        with self._cond:
            self._seq += 1
            name = f"{os.getpid()}-{self._seq}"
        cg = self._manager.create(name, _IDLE)
        try:
            init = self._zygote.request()
        except BaseException:
            cg.destroy()
            raise
        try:
            send_join(init.sock, cg.join_fds())
        except OSError as e:
            init.discard()
            cg.destroy()
            raise SandboxError("warm box", "sendmsg(cgroup fds)", e.errno or 0) from e
        return WarmBox(init, cg)

    def _fill(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or len(self._ready) < self._size)
                if self._closed:
                    return
            try:
                box = self._make()
            except SandboxError as e:
                self._error = e
                return  # take() then makes one itself and raises the error where it is seen
            with self._cond:
                if self._closed:
                    box.discard()
                    return
                self._ready.append(box)
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        while self._ready:
            self._ready.popleft().discard()
