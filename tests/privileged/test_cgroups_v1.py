"""cgroup v1 on the real kernel: CPU time, peak memory, OOM, pids, kill_all and destroy."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.cgroups import parse_mountinfo
from sandbox.cgroups.manager import V1_REQUIRED
from sandbox.cgroups.v1 import V1Manager
from tests.privileged import cgroup_cases as cases

pytestmark = pytest.mark.privileged


def v1_mounts() -> dict[str, str]:
    mounts: dict[str, str] = {}
    for m in parse_mountinfo(Path("/proc/self/mountinfo").read_text()):
        for ctl in m.controllers:
            mounts.setdefault(ctl, m.mount_point)
    return mounts


@pytest.fixture
def mounts() -> dict[str, str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create cgroups")
    found = v1_mounts()
    missing = [c for c in (*V1_REQUIRED, "freezer") if c not in found]
    if missing:
        pytest.skip(f"no cgroup v1 hierarchy for: {', '.join(missing)}")
    return found


@pytest.fixture
def boxes(mounts: dict[str, str]) -> Iterator[cases.Boxes]:
    boxes = cases.Boxes(V1Manager(mounts))
    yield boxes
    boxes.close()


def test_box_inherits_swappiness_and_oom_kill_from_stockade(boxes: cases.Boxes) -> None:
    mem = Path(boxes.create().paths[0])
    assert mem.parent.name == "stockade"
    assert (mem / "memory.swappiness").read_text().strip() == "0"
    assert "oom_kill_disable 0" in (mem / "memory.oom_control").read_text()
    assert (mem / "memory.limit_in_bytes").read_text().strip() == str(256 * cases.MIB)
    assert (mem / "memory.memsw.limit_in_bytes").read_text().strip() == str(256 * cases.MIB)


def test_cpu_time_matches_rusage(boxes: cases.Boxes) -> None:
    cases.check_cpu_time(boxes)


def test_memory_peak_of_50_mib(boxes: cases.Boxes) -> None:
    cases.check_memory_peak(boxes)


def test_shmem_is_memfd_and_tmpfs_pages_only(boxes: cases.Boxes) -> None:
    cases.check_shmem(boxes)


def test_memory_limit_oom_kills(boxes: cases.Boxes) -> None:
    cases.check_oom_kill(boxes)


def test_pids_limit_makes_fork_fail_with_eagain(boxes: cases.Boxes) -> None:
    cases.check_pids_limit(boxes)


def test_kill_all_reaches_stubborn_grandchildren(boxes: cases.Boxes) -> None:
    cases.check_kill_all(boxes)


def test_kill_all_stops_a_fork_bomb(boxes: cases.Boxes) -> None:
    cases.check_fork_bomb_kill(boxes)


def test_set_limits_up_and_down(boxes: cases.Boxes) -> None:
    cases.check_set_limits_up_and_down(boxes)


def test_destroy_leaves_no_directory(boxes: cases.Boxes) -> None:
    cases.check_destroy_removes_everything(boxes)
