"""cgroup v2 against a fake tree: probe, subtree_control, values written, stats, kill, destroy."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from sandbox.cgroups import CgroupLimits, CgroupOps, join_in_child, parse_mountinfo, probe, v2
from sandbox.cgroups.manager import choose_hierarchy
from sandbox.errors import SandboxError
from tests.unit.cgroup_fake import V1_MOUNTINFO, V2_MOUNTINFO, FakeKernel, cgroup_dirs, v2_tree

MIB = 1 << 20


def manager(
    tmp_path: Path, drop: tuple[str, ...] = (), enabled: str = ""
) -> tuple[v2.V2Manager, Path, FakeKernel]:
    kernel, root, mountinfo = v2_tree(tmp_path, drop)
    cg = root / "sys/fs/cgroup"
    (cg / "cgroup.subtree_control").write_text(enabled)
    ops = CgroupOps(kernel.mkdir, kernel.rmdir, kernel.kill)
    mgr = probe(str(mountinfo), root, ops=ops)
    assert isinstance(mgr, v2.V2Manager)
    return mgr, cg, kernel


def test_choose_v2_when_it_has_memory_and_pids() -> None:
    mounts = parse_mountinfo(V2_MOUNTINFO)
    choice = choose_hierarchy(mounts, {"/sys/fs/cgroup": frozenset({"memory", "pids", "io"})})
    assert (choice.version, choice.v2_mount) == (2, "/sys/fs/cgroup")


def test_hybrid_host_with_full_cgroup2_prefers_v2() -> None:
    mounts = parse_mountinfo(V1_MOUNTINFO)
    choice = choose_hierarchy(mounts, {"/sys/fs/cgroup/unified": frozenset({"memory", "pids"})})
    assert choice.version == 2 and choice.v2_mount == "/sys/fs/cgroup/unified"


def test_v2_without_pids_and_no_v1_is_refused() -> None:
    mounts = parse_mountinfo(V2_MOUNTINFO)
    with pytest.raises(SandboxError) as info:
        choose_hierarchy(mounts, {"/sys/fs/cgroup": frozenset({"memory", "cpu"})})
    assert "cgroup2 at /sys/fs/cgroup lacks pids" in info.value.detail
    assert "cgroup v1 lacks memory, pids, cpuacct" in info.value.detail


def test_plan_enable_one_write_per_missing_controller() -> None:
    available = frozenset({"cpu", "memory", "pids", "io"})
    assert v2.plan_enable(frozenset(), available) == [
        (b"+memory", True),
        (b"+pids", True),
        (b"+cpu", False),
    ]
    assert v2.plan_enable(frozenset({"memory", "pids", "cpu"}), available) == []
    assert v2.plan_enable(frozenset({"memory"}), frozenset({"memory", "pids"})) == [
        (b"+pids", True)
    ]


def test_plan_limits_caps_swap_at_zero() -> None:
    assert v2.plan_limits(CgroupLimits(64 * MIB, 8), has_swap=True) == [
        ("memory.max", b"67108864"),
        ("memory.swap.max", b"0"),
        ("pids.max", b"8"),
    ]
    assert [f for f, _ in v2.plan_limits(CgroupLimits(64 * MIB, 8), False)] == [
        "memory.max",
        "pids.max",
    ]


def test_plan_limits_on_update_skips_swap_and_unchanged() -> None:
    old = CgroupLimits(64 * MIB, 1)
    assert v2.plan_limits(CgroupLimits(64 * MIB, 30), True, old) == [("pids.max", b"30")]
    assert v2.plan_limits(CgroupLimits(32 * MIB, 1), True, old) == [("memory.max", b"33554432")]


def test_set_limits_on_v2(tmp_path: Path) -> None:
    mgr, cg, _ = manager(tmp_path)
    box = mgr.create("box-w", CgroupLimits(64 * MIB, 1))
    box.set_limits(CgroupLimits(128 * MIB, 50))
    d = cg / "stockade/box-w"
    assert (d / "memory.max").read_text() == str(128 * MIB)
    assert (d / "pids.max").read_text() == "50"
    box.destroy()


def test_probe_enables_controllers_in_root_and_stockade(tmp_path: Path) -> None:
    _, cg, _ = manager(tmp_path)
    # Plain files keep only the last write: "+cpu", the optional one, came last in both.
    assert (cg / "cgroup.subtree_control").read_text() == "+cpu"
    assert (cg / "stockade/cgroup.subtree_control").read_text() == "+cpu"


def test_probe_leaves_an_already_enabled_root_alone(tmp_path: Path) -> None:
    mgr, cg, _ = manager(tmp_path, enabled="cpu memory pids\n")
    assert (cg / "cgroup.subtree_control").read_text() == "cpu memory pids\n"
    assert mgr.has_kill and mgr.has_peak and mgr.has_swap


def test_create_writes_limits_and_join_fd(tmp_path: Path) -> None:
    mgr, cg, _ = manager(tmp_path)
    box = mgr.create("box-1", CgroupLimits(memory_bytes=48 * MIB, pids=10))
    d = cg / "stockade/box-1"
    assert (d / "memory.max").read_text() == str(48 * MIB)
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "pids.max").read_text() == "10"
    (fd,) = box.join_fds()
    assert os.fstat(fd).st_ino == (d / "cgroup.procs").stat().st_ino
    join_in_child([fd])
    assert (d / "cgroup.procs").read_text() == "0"
    box.destroy()
    assert cgroup_dirs(cg) == []


def test_stats_from_cpu_stat_peak_and_events(tmp_path: Path) -> None:
    mgr, cg, _ = manager(tmp_path)
    box = mgr.create("box-2", CgroupLimits(32 * MIB, 4))
    d = cg / "stockade/box-2"
    (d / "cpu.stat").write_text("usage_usec 300000\nuser_usec 250000\nsystem_usec 50000\n")
    (d / "memory.peak").write_text("52428800\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    assert box.cpu_time_s() == pytest.approx(0.3)
    assert box.memory_peak_bytes() == 52428800
    assert box.oom_killed()
    # cgroup-v2.rst's memory.stat: "shmem" among the others, not the first.
    (d / "memory.stat").write_text("anon 13631488\nfile 56623104\nshmem 54525952\n")
    assert box.shmem_bytes() == 54525952
    box.destroy()


def test_peak_falls_back_to_sampled_current(tmp_path: Path) -> None:
    mgr, cg, _ = manager(tmp_path, drop=("memory.peak",))
    assert not mgr.has_peak
    box = mgr.create("box-3", CgroupLimits(32 * MIB, 4))
    current = cg / "stockade/box-3/memory.current"
    for value, expected in ((1000, 1000), (5000, 5000), (2000, 5000)):
        current.write_text(f"{value}\n")
        assert box.memory_peak_bytes() == expected
    box.destroy()


def test_no_swap_accounting_skips_swap_max(tmp_path: Path) -> None:
    mgr, cg, _ = manager(tmp_path, drop=("memory.swap.max",))
    box = mgr.create("box-4", CgroupLimits(32 * MIB, 4))
    assert not (cg / "stockade/box-4/memory.swap.max").exists()
    box.destroy()


def test_kill_all_writes_cgroup_kill(tmp_path: Path) -> None:
    mgr, cg, kernel = manager(tmp_path)
    box = mgr.create("box-5", CgroupLimits(32 * MIB, 4))
    box.kill_all()
    assert (cg / "stockade/box-5/cgroup.kill").read_text() == "1"
    assert kernel.killed == []  # the kernel did it; nothing listed to sweep
    box.destroy()


def test_kill_all_without_cgroup_kill_freezes_and_sweeps(tmp_path: Path) -> None:
    mgr, cg, kernel = manager(tmp_path, drop=("cgroup.kill",))
    assert not mgr.has_kill
    box = mgr.create("box-6", CgroupLimits(32 * MIB, 4))
    d = cg / "stockade/box-6"
    (d / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    (d / "cgroup.procs").write_text("31\n32\n")
    box.destroy()  # rmdir: EBUSY -> kill_all -> rmdir
    assert sorted(kernel.killed) == [(31, signal.SIGKILL), (32, signal.SIGKILL)]
    assert cgroup_dirs(cg) == []


def test_busy_destroy_uses_cgroup_kill_then_removes(tmp_path: Path) -> None:
    mgr, cg, kernel = manager(tmp_path)
    box = mgr.create("box-7", CgroupLimits(32 * MIB, 4))
    (cg / "stockade/box-7/cgroup.procs").write_text("41\n")
    box.destroy()
    # The fake cgroup.kill does nothing, so the sweep after it had to kill 41.
    assert kernel.killed == [(41, signal.SIGKILL)]
    assert kernel.rmdirs.count(str(cg / "stockade/box-7")) == 2
    assert cgroup_dirs(cg) == []
