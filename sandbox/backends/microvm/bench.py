"""Cold and warm latency of the microVM tier, as `stockade microvm bench` prints them."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from sandbox import cgroups
from sandbox.backends.microvm.backend import MicrovmBackend
from sandbox.backends.microvm.pool import PoolKey
from sandbox.backends.microvm.qemu_plan import vm_memory_mib
from sandbox.config import HostConfig
from sandbox.images import Images
from sandbox.result import Status
from sandbox.spec import BoxSpec
from sandbox.stdio import Stdio

JOBS: dict[str, tuple[str, ...]] = {
    "true": ("/bin/true",),
    "python hello": ("python3", "-c", "print('hello')"),
}


def _timed(backend: MicrovmBackend, spec: BoxSpec) -> float:
    started = time.monotonic()
    result = backend.run(spec, Stdio())
    took = time.monotonic() - started
    if result.status is not Status.OK:
        raise RuntimeError(f"{spec.argv}: {result.status} {result.message}")
    return took


def measure(
    config: HostConfig, images: Images, image: str, runs: int, say: Callable[[str], None]
) -> dict[str, float]:
    """Median seconds per box, cold (a VM booted for the box) and warm (a pool VM, booted
    and warmed up before the box was asked for), for each job in JOBS."""
    figures: dict[str, float] = {}
    manager = cgroups.probe()
    try:
        _measure(config, images, image, runs, say, manager, figures)
    finally:
        manager.close()
    return figures


def _measure(
    config: HostConfig,
    images: Images,
    image: str,
    runs: int,
    say: Callable[[str], None],
    manager: cgroups.CgroupManager,
    figures: dict[str, float],
) -> None:
    cold = MicrovmBackend(config, images, manager, pool=0)
    try:
        key = PoolKey(image, vm_memory_mib(BoxSpec(argv=("x",)).limits.memory_bytes))
        boots = []
        for _ in range(runs):
            booted = cold._boot(key, cold.accel)
            boots.append(booted.vm.booted_s)
            cold._discard(booted)
        figures["boot"] = statistics.median(boots)
        say(f"boot to the agent's HELLO ({cold.runtime}): median {figures['boot']:.3f} s of {runs}")
        for name, argv in JOBS.items():
            spec = BoxSpec(argv=argv, rootfs=image, tier="microvm")
            times = [_timed(cold, spec) for _ in range(runs)]
            figures[f"cold {name}"] = statistics.median(times)
            say(f"cold {name}: median {figures[f'cold {name}']:.3f} s of {runs}")
    finally:
        cold.close()
    warm = MicrovmBackend(config, images, manager, pool=1)
    try:
        key = PoolKey(image, vm_memory_mib(BoxSpec(argv=("x",)).limits.memory_bytes))
        assert warm.pool.take(key) is None  # a new key: the pool learns it and boots for it
        for name, argv in JOBS.items():
            spec = BoxSpec(argv=argv, rootfs=image, tier="microvm")
            times = []
            for _ in range(runs):
                if not warm.pool.wait_ready(key, 120):
                    raise RuntimeError("the pool did not get a VM ready in 120 s")
                times.append(_timed(warm, spec))
            figures[f"warm {name}"] = statistics.median(times)
            say(f"warm {name}: median {figures[f'warm {name}']:.3f} s of {runs}")
    finally:
        warm.close()
