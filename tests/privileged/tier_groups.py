"""The gVisor tier's probe groups (several hostile programs in one box) run on the microVM
tier, and the host check after each microVM test: no QEMU or VM cgroup beyond what the
backend holds, no new box mount, the host canaries and host files unchanged."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from tests.privileged import hostile_util as hu
from tests.privileged.test_tier_gvisor_containment import (
    GROUP_LIMITS,
    Group,
    Probe,
    group_box,
    parse_kv,
)
from tests.privileged.test_tier_microvm import launcher_backend, usable

__all__ = ["GROUP_LIMITS", "Group", "Probe"]

# Every box of the microVM suite runs on this image: Debian's python3 over the same
# bookworm as the host, so the host-built (dynamic glibc) hostile programs run there too,
# and C and Python probes share one VM. One image and guest size (vm_memory_mib gives
# 512 MiB for 64 and 128 MiB boxes alike) keep one pool key: each box takes the VM the
# pool booted during the box before.
IMAGE = "python3"
M: dict[str, Any] = {"tier": "microvm", "rootfs": IMAGE}
# Guest code runs ~14x slower under TCG: a group of a dozen Python probes needs seconds of
# CPU that a container box would not.
MVM_GROUP_LIMITS = dataclasses.replace(GROUP_LIMITS, cpu_time_s=60.0, wall_time_s=90.0)


def run_group(
    launcher: Launcher, probes: list[Probe], elves: dict[str, bytes] | None = None, **spec: Any
) -> Group:
    """test_tier_gvisor_containment's run_group with the box sent to a microVM."""
    spec.setdefault("limits", MVM_GROUP_LIMITS)
    box = dataclasses.replace(group_box(probes, elves or {}, **spec), **M)
    r = launcher.run(box)
    assert r.status is Status.OK, hu.describe(r)
    outs = {p.name: parse_kv(r.files.get(f"/box/out/{p.name}", b"")) for p in probes}
    rcs = {p.name: hu.kv(r).get(f"{p.name}_rc", "<missing>") for p in probes}
    return Group(r, outs, rcs)


def run_py(launcher: Launcher, code: str, *args: str, **spec: Any) -> BoxResult:
    return hu.run_py(launcher, code, *args, **M, **spec)


def run_c(
    launcher: Launcher, elves: dict[str, bytes], name: str, *args: str, **spec: Any
) -> BoxResult:
    return hu.run_c(launcher, elves, name, *args, **M, **spec)


@pytest.fixture(scope="module", autouse=True)
def microvm_usable(launcher: Launcher) -> None:
    """The tier runs here and the session launcher's backend (whose pool VMs are not
    leftovers) is registered with test_tier_microvm's nothing_left."""
    usable(launcher.config)
    launcher_backend(launcher)


@pytest.fixture(autouse=True)
def no_new_mounts(microvm_usable: None) -> Iterator[None]:
    """QEMU mounts nothing on the host: a box must not leave a mount behind either."""
    before = hu.stockade_mounts()
    yield
    assert hu.stockade_mounts() - before == set()
