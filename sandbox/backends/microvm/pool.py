"""The warm pool: booted, warmed-up VMs kept ready per (image, guest memory), so a job waits
for neither the boot nor the first translation of its interpreter. Each VM serves one job.
Only the most recently asked-for keys are kept warm: a ready VM holds one of the tier's VM
slots and its guest memory, and a judge serving every language asks for two keys (compile
and run) per language."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sandbox.settings import setting

log = logging.getLogger(__name__)
V = TypeVar("V")
# Keys kept warm at once (the least recently asked-for one is dropped past this): a quarter
# of the 16 VM slots, so that boxes of other keys always find a slot.
MAX_WARM_KEYS = 4


@dataclass(frozen=True)
class PoolKey:
    image: str
    memory_mib: int


# A booting VM takes a whole core under TCG, so the default is one.
POOL = setting("STOCKADE_MICROVM_POOL", 1, "ready microVMs per key (0: no pool)", minimum=0)


def next_to_start(
    ready: dict[PoolKey, int], starting: dict[PoolKey, int], per_key: int, max_starting: int
) -> PoolKey | None:
    """Which key to boot a VM for next: the one furthest below its target, and none while
    `max_starting` boots are under way (boots compete with jobs for the host's cores). The
    keys kept warm are those of `ready`; one only in `starting` was dropped."""
    if sum(starting.values()) >= max_starting:
        return None
    short = [
        (ready[k] + starting.get(k, 0), k.image, k.memory_mib, k)
        for k in ready
        if ready[k] + starting.get(k, 0) < per_key
    ]
    return min(short)[3] if short else None


class VmPool(Generic[V]):
    """Keeps `per_key` ready VMs for each key that was ever asked for. `start` boots and
    warms one (blocking, in the pool's thread); `discard` ends one that is not taken."""

    def __init__(
        self,
        start: Callable[[PoolKey], V],
        discard: Callable[[V], None],
        per_key: int,
        max_starting: int = 1,
        max_keys: int = MAX_WARM_KEYS,
    ) -> None:
        self._start = start
        self._discard = discard
        self._per_key = per_key
        self._max_starting = max_starting
        self._max_keys = max_keys
        # The keys kept warm, least recently asked-for first (dicts keep insertion order).
        self._ready: dict[PoolKey, list[V]] = {}
        self._starting: dict[PoolKey, int] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name="microvm-pool", daemon=True)
        if per_key > 0:
            self._thread.start()

    def take(self, key: PoolKey, wait_s: float = 0.0) -> V | None:
        """A ready VM for `key`, or None (the caller boots one itself); either way the key
        is now one the pool keeps warm. While one for the key is booting, waits for it up
        to wait_s: it is further along than a boot of the caller's, which would also take
        a core from it (a judge's test cases come faster than a VM boots under TCG)."""
        with self._cond:
            vms = self._ready.pop(key, [])
            self._ready[key] = vms  # now the most recently asked-for
            dropped = self._drop_oldest_keys()
            self._cond.wait_for(
                lambda: vms or not self._starting.get(key) or self._closed, timeout=wait_s
            )
            vm = vms.pop(0) if vms else None
            self._cond.notify_all()
        for old in dropped:
            self._discard(old)
        return vm

    def _drop_oldest_keys(self) -> list[V]:
        """Forget the least recently asked-for keys past max_keys; their ready VMs are
        returned, for the caller to discard outside the lock."""
        dropped: list[V] = []
        while len(self._ready) > self._max_keys:
            oldest = next(iter(self._ready))
            dropped += self._ready.pop(oldest)
        return dropped

    def give_up_one(self) -> bool:
        """Discard one ready VM, of the least recently asked-for key that has one, and keep
        the key: a box that found every VM slot taken needs one now (the pool refills the
        key once a slot is free again). False when no VM is ready."""
        with self._cond:
            # No notify: the pool's thread is not to refill now, on the slot this frees.
            vm = next((vms.pop(0) for vms in self._ready.values() if vms), None)
        if vm is None:
            return False
        self._discard(vm)
        return True

    def wait_ready(self, key: PoolKey, timeout_s: float) -> bool:
        """Until a VM for `key` is ready (tests and benchmarks measure the warm path)."""
        with self._cond:
            self._ready.setdefault(key, [])
            self._cond.notify_all()
            return self._cond.wait_for(lambda: bool(self._ready.get(key)), timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                counts = {k: len(v) for k, v in self._ready.items()}
                key = None
                while not self._closed:
                    key = next_to_start(counts, self._starting, self._per_key, self._max_starting)
                    if key is not None:
                        break
                    self._cond.wait()
                    counts = {k: len(v) for k, v in self._ready.items()}
                if self._closed or key is None:
                    return
                self._starting[key] = self._starting.get(key, 0) + 1
            vm: V | None = None
            try:
                vm = self._start(key)
                self._failures = 0
            except Exception as e:  # a failed boot is retried, slower each time
                if self._closed:
                    return  # close() killed it
                self._failures += 1
                log.warning("microvm pool: starting a VM for %s failed: %s", key, e)
            with self._cond:
                self._starting[key] -= 1
                if vm is not None and not self._closed and key in self._ready:
                    self._ready[key].append(vm)
                    vm = None
                self._cond.notify_all()
                if self._failures and not self._closed:
                    self._cond.wait(min(30.0, 0.5 * 2**self._failures))
            if vm is not None:
                self._discard(vm)

    def stop(self) -> None:
        """Start no more VMs (one booting now still finishes, or fails if it is killed)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def close(self) -> None:
        self.stop()
        if self._thread.is_alive():
            self._thread.join()
        with self._cond:
            vms = [vm for vs in self._ready.values() for vm in vs]
            self._ready.clear()
        for vm in vms:
            self._discard(vm)
