"""cgroup v2 on the real kernel, where a cgroup2 tree has memory and pids; skips elsewhere."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.cgroups import parse_mountinfo
from sandbox.cgroups.delegation import this_placement
from sandbox.cgroups.manager import V2_REQUIRED
from sandbox.cgroups.v2 import V2Manager
from tests.privileged import cgroup_cases as cases

pytestmark = pytest.mark.privileged


def find_v2() -> tuple[str, str]:
    """(mount point of a cgroup2 tree with memory and pids, "") or ("", why not)."""
    why: list[str] = []
    mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    on_v1 = {c for m in mounts for c in m.controllers}
    for m in mounts:
        if m.fstype != "cgroup2":
            continue
        try:
            have = Path(m.mount_point, "cgroup.controllers").read_text().split()
        except OSError as e:
            why.append(f"{m.mount_point}: {e.strerror}")
            continue
        missing = [c for c in V2_REQUIRED if c not in have]
        if not missing:
            return m.mount_point, ""
        names = " and ".join(missing) + (" controllers" if len(missing) > 1 else " controller")
        bound = " (bound to cgroup v1 here)" if all(c in on_v1 for c in missing) else ""
        why.append(f"cgroup2 at {m.mount_point} lacks the {names}{bound}")
    return "", "; ".join(why) or "no cgroup2 mount"


@pytest.fixture
def mount() -> str:
    if os.geteuid() != 0:
        pytest.skip("needs root to create cgroups")
    found, why = find_v2()
    if not found:
        if os.environ.get("STOCKADE_IN_V2LAB") == "1":
            pytest.fail(f"the cgroup2 lab has no usable cgroup2: {why}")
        pytest.skip(why)
    return found


@pytest.fixture
def boxes(mount: str) -> Iterator[cases.Boxes]:
    # Where a launcher on this host would put them: a systemd unit's delegated subtree.
    boxes = cases.Boxes(V2Manager(mount, placement=this_placement(mount)))
    yield boxes
    boxes.close()


def test_limits_written(boxes: cases.Boxes) -> None:
    d = Path(boxes.create(memory_bytes=64 * cases.MIB, pids=9).paths[0])
    assert d.parent.name == "stockade"
    assert (d / "memory.max").read_text().strip() == str(64 * cases.MIB)
    assert (d / "pids.max").read_text().strip() == "9"
    if (d / "memory.swap.max").exists():
        assert (d / "memory.swap.max").read_text().strip() == "0"


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
