"""cgroup v1 against a fake tree: mountinfo, probe, values written, stats, kill and destroy."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from sandbox.cgroups import (
    CgroupLimits,
    CgroupOps,
    base,
    fs,
    join_in_child,
    parse_mountinfo,
    probe,
    v1,
)
from sandbox.cgroups.manager import CgroupMount, choose_hierarchy
from sandbox.errors import SandboxError
from tests.unit.cgroup_fake import V1_MOUNTINFO, FakeKernel, cgroup_dirs, v1_tree

MIB = 1 << 20


def manager(tmp_path: Path, memsw: bool = True) -> tuple[v1.V1Manager, Path, FakeKernel]:
    kernel, root, mountinfo = v1_tree(tmp_path, memsw)
    ops = CgroupOps(kernel.mkdir, kernel.rmdir, kernel.kill)
    mgr = probe(str(mountinfo), root, ops=ops)
    assert isinstance(mgr, v1.V1Manager)
    return mgr, root / "sys/fs/cgroup", kernel


def test_parse_mountinfo_reads_controllers_and_escapes() -> None:
    text = V1_MOUNTINFO + (
        "50 31 0:40 /box /mnt/my\\040cg rw - cgroup cgroup rw,cpu,cpuacct,clone_children\n"
        "51 31 0:41 / /proc rw - proc proc rw\n"
    )
    mounts = parse_mountinfo(text)
    assert [m.fstype for m in mounts].count("cgroup2") == 1
    by_point = {m.mount_point: m for m in mounts}
    assert by_point["/sys/fs/cgroup/memory"].controllers == {"memory"}
    assert by_point["/sys/fs/cgroup/systemd"].controllers == frozenset()
    joined = by_point["/mnt/my cg"]
    assert joined.controllers == {"cpu", "cpuacct"} and joined.root == "/box"
    assert "/proc" not in by_point and "/sys/fs/cgroup" not in by_point


def test_choose_v1_when_cgroup2_lacks_memory_and_pids() -> None:
    choice = choose_hierarchy(
        parse_mountinfo(V1_MOUNTINFO), {"/sys/fs/cgroup/unified": frozenset()}
    )
    assert choice.version == 1
    assert choice.v1_mounts == {
        "memory": "/sys/fs/cgroup/memory",
        "pids": "/sys/fs/cgroup/pids",
        "cpuacct": "/sys/fs/cgroup/cpuacct",
        "freezer": "/sys/fs/cgroup/freezer",
    }


def test_choose_joined_cpu_cpuacct_mount() -> None:
    mounts = [
        CgroupMount("cgroup", "/cg/memory", "/", frozenset({"memory"})),
        CgroupMount("cgroup", "/cg/pids", "/", frozenset({"pids"})),
        CgroupMount("cgroup", "/cg/cpu,cpuacct", "/", frozenset({"cpu", "cpuacct"})),
    ]
    assert choose_hierarchy(mounts, {}).v1_mounts["cpuacct"] == "/cg/cpu,cpuacct"


def test_probe_names_everything_missing(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
    )
    (tmp_path / "sys/fs/cgroup/unified").mkdir(parents=True)
    (tmp_path / "sys/fs/cgroup/unified/cgroup.controllers").write_text("cpu io\n")
    with pytest.raises(SandboxError) as info:
        probe(str(mountinfo), tmp_path)
    assert info.value.syscall == "probe"
    assert "cgroup2 at /sys/fs/cgroup/unified lacks memory, pids" in info.value.detail
    assert "cgroup v1 lacks pids, cpuacct" in info.value.detail


def test_parent_settings_written_once(tmp_path: Path) -> None:
    mgr, cg, _ = manager(tmp_path)
    assert mgr.version == 1 and mgr.has_memsw
    assert (cg / "memory/stockade/memory.swappiness").read_text() == "0"
    assert (cg / "memory/stockade/memory.oom_control").read_text() == "0"
    # The cpu hierarchy is mounted but not needed: no stockade/ node there.
    assert not (cg / "cpu/stockade").exists()


def test_create_writes_limits_and_opens_join_fds(tmp_path: Path) -> None:
    mgr, cg, _ = manager(tmp_path)
    box = mgr.create("box-1", CgroupLimits(memory_bytes=64 * MIB, pids=16))
    assert (cg / "memory/stockade/box-1/memory.limit_in_bytes").read_text() == str(64 * MIB)
    assert (cg / "memory/stockade/box-1/memory.memsw.limit_in_bytes").read_text() == str(64 * MIB)
    assert (cg / "pids/stockade/box-1/pids.max").read_text() == "16"
    fds = box.join_fds()
    assert len(fds) == 4
    joined = {os.fstat(fd).st_ino for fd in fds}
    expected = {(cg / c / "stockade/box-1/cgroup.procs").stat().st_ino for c in v1.ORDER}
    assert joined == expected
    join_in_child(fds)
    for ctl in v1.ORDER:
        assert (cg / ctl / "stockade/box-1/cgroup.procs").read_text() == "0"
    box.destroy()


def test_plan_orders_memsw_around_limit() -> None:
    new = v1.plan_limits(CgroupLimits(64 * MIB, 8), has_memsw=True)
    assert [f for _, f, _ in new] == [
        "memory.limit_in_bytes",
        "memory.memsw.limit_in_bytes",
        "pids.max",
    ]
    grow = v1.plan_limits(CgroupLimits(128 * MIB, 8), True, CgroupLimits(64 * MIB, 8))
    assert grow == [
        ("memory", "memory.memsw.limit_in_bytes", b"134217728"),
        ("memory", "memory.limit_in_bytes", b"134217728"),
    ]
    shrink = v1.plan_limits(CgroupLimits(32 * MIB, 9), True, CgroupLimits(64 * MIB, 8))
    assert [f for _, f, _ in shrink] == [
        "memory.limit_in_bytes",
        "memory.memsw.limit_in_bytes",
        "pids.max",
    ]
    assert v1.plan_limits(CgroupLimits(32 * MIB, 9), True, CgroupLimits(32 * MIB, 9)) == []


def test_set_limits_rewrites_only_what_changed(tmp_path: Path) -> None:
    mgr, cg, _ = manager(tmp_path)
    box = mgr.create("box-w", CgroupLimits(64 * MIB, 1))
    mem = cg / "memory/stockade/box-w"
    (mem / "memory.limit_in_bytes").write_text("sentinel")
    box.set_limits(CgroupLimits(64 * MIB, 40))
    assert (mem / "memory.limit_in_bytes").read_text() == "sentinel"  # unchanged: not written
    assert (cg / "pids/stockade/box-w/pids.max").read_text() == "40"
    box.set_limits(CgroupLimits(256 * MIB, 40))
    assert (mem / "memory.limit_in_bytes").read_text() == str(256 * MIB)
    assert (mem / "memory.memsw.limit_in_bytes").read_text() == str(256 * MIB)
    box.destroy()


def test_without_memsw_only_memory_is_limited(tmp_path: Path) -> None:
    mgr, cg, _ = manager(tmp_path, memsw=False)
    assert not mgr.has_memsw
    box = mgr.create("box-2", CgroupLimits(32 * MIB, 4))
    assert not (cg / "memory/stockade/box-2/memory.memsw.limit_in_bytes").exists()
    (cg / "memory/stockade/box-2/memory.max_usage_in_bytes").write_text("12345\n")
    assert box.memory_peak_bytes() == 12345
    box.destroy()


def test_stats_are_read_from_the_box_files(tmp_path: Path) -> None:
    mgr, cg, _ = manager(tmp_path)
    box = mgr.create("box-3", CgroupLimits(32 * MIB, 4))
    mem = cg / "memory/stockade/box-3"
    assert box.cpu_time_s() == 0.0 and box.memory_peak_bytes() == 0 and not box.oom_killed()
    (cg / "cpuacct/stockade/box-3/cpuacct.usage").write_text("312500000\n")
    (mem / "memory.memsw.max_usage_in_bytes").write_text("52428800\n")
    (mem / "memory.max_usage_in_bytes").write_text("1\n")  # memsw's counter wins
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert box.cpu_time_s() == pytest.approx(0.3125)
    assert box.memory_peak_bytes() == 52428800
    assert box.oom_killed()
    # memory.rst 5.2: this group's "shmem", then the hierarchy's "total_shmem".
    (mem / "memory.stat").write_text(
        "cache 56623104\nrss 13631488\nshmem 54525952\ntotal_shmem 99\n"
    )
    assert box.shmem_bytes() == 54525952
    box.destroy()


def test_destroy_removes_every_dir_once_and_closes_fds(tmp_path: Path) -> None:
    mgr, cg, kernel = manager(tmp_path)
    box = mgr.create("box-4", CgroupLimits(32 * MIB, 4))
    box.cpu_time_s()
    fds = box.join_fds()
    box.destroy()
    assert cgroup_dirs(cg) == []
    assert len(kernel.rmdirs) == 4 and kernel.killed == []
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
    box.destroy()  # idempotent: no second round of rmdir
    assert len(kernel.rmdirs) == 4


def test_destroy_of_busy_box_freezes_kills_thaws(tmp_path: Path) -> None:
    mgr, cg, kernel = manager(tmp_path)
    box = mgr.create("box-5", CgroupLimits(32 * MIB, 4))
    for ctl in v1.ORDER:
        (cg / ctl / "stockade/box-5/cgroup.procs").write_text("4242\n4343\n")
    state = cg / "freezer/stockade/box-5/freezer.state"
    box.destroy()
    assert sorted(kernel.killed) == [(4242, signal.SIGKILL), (4343, signal.SIGKILL)]
    assert kernel.rmdirs[0].endswith("memory/stockade/box-5")  # tried, busy, then killed
    assert cgroup_dirs(cg) == []
    assert not state.exists()


def test_without_freezer_busy_destroy_sweeps_until_empty(tmp_path: Path) -> None:
    kernel, root, mountinfo = v1_tree(tmp_path)
    mountinfo.write_text("".join(x for x in V1_MOUNTINFO.splitlines(True) if "freezer" not in x))
    mgr = probe(str(mountinfo), root, ops=CgroupOps(kernel.mkdir, kernel.rmdir, kernel.kill))
    cg = root / "sys/fs/cgroup"
    box = mgr.create("box-nf", CgroupLimits(32 * MIB, 4))
    assert len(box.paths) == 3 and not (cg / "freezer/stockade").exists()
    (cg / "memory/stockade/box-nf/cgroup.procs").write_text("61\n62\n")
    box.destroy()
    assert sorted(kernel.killed) == [(61, signal.SIGKILL), (62, signal.SIGKILL)]
    assert cgroup_dirs(cg) == []


def test_kill_all_thaws_even_when_the_kill_fails(tmp_path: Path) -> None:
    mgr, cg, _ = manager(tmp_path)
    box = mgr.create("box-6", CgroupLimits(32 * MIB, 4))
    procs = cg / "freezer/stockade/box-6/cgroup.procs"
    procs.write_text("not-a-pid\n")
    with pytest.raises(ValueError):
        box.kill_all()
    assert (cg / "freezer/stockade/box-6/freezer.state").read_text() == "THAWED"
    procs.write_text("")
    box.destroy()


def test_destroy_raises_when_tasks_survive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(v1, "KILL_TIMEOUT_S", 0.05)
    monkeypatch.setattr(base, "RMDIR_TIMEOUT_S", 0.05)
    mgr, cg, kernel = manager(tmp_path)
    kernel.immortal = True
    box = mgr.create("box-7", CgroupLimits(32 * MIB, 4))
    (cg / "memory/stockade/box-7/cgroup.procs").write_text("777\n")
    with pytest.raises(SandboxError) as info:
        box.destroy()
    assert "1 processes survive" in info.value.detail
    kernel.immortal = False
    box.destroy()  # not marked destroyed by the failure: a retry finishes the job
    assert cgroup_dirs(cg) == []


def test_name_collision_never_reuses_and_rolls_back(tmp_path: Path) -> None:
    mgr, cg, _ = manager(tmp_path)
    (cg / "pids/stockade/box-8").mkdir()
    with pytest.raises(SandboxError) as info:
        mgr.create("box-8", CgroupLimits(32 * MIB, 4))
    assert info.value.syscall.startswith("mkdir(") and "never reused" in info.value.detail
    assert not (cg / "memory/stockade/box-8").exists()  # the dir made before was removed


def test_failed_limit_write_rolls_back(tmp_path: Path) -> None:
    mgr, cg, kernel = manager(tmp_path)
    del kernel.files_by_root[cg / "pids"]["pids.max"]  # as if the pids controller were broken
    with pytest.raises(SandboxError) as info:
        mgr.create("box-9", CgroupLimits(32 * MIB, 4))
    assert "pids.max" in info.value.syscall
    assert cgroup_dirs(cg) == []


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", ".hidden", "x" * 200, "sp ace"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    mgr, _, _ = manager(tmp_path)
    with pytest.raises(SandboxError):
        mgr.create(name, CgroupLimits(32 * MIB, 4))


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="memory_bytes"):
        CgroupLimits(memory_bytes=4096, pids=4)
    with pytest.raises(ValueError, match="pids"):
        CgroupLimits(memory_bytes=32 * MIB, pids=0)


def test_join_in_child_names_the_write() -> None:
    r, w = os.pipe()
    os.close(w)
    with pytest.raises(SandboxError) as info:
        join_in_child([r])  # a read-only fd: EBADF
    os.close(r)
    assert info.value.syscall == "write(cgroup.procs)" and info.value.errno


def test_close_destroys_boxes_left_alive(tmp_path: Path) -> None:
    mgr, cg, _ = manager(tmp_path)
    mgr.create("box-10", CgroupLimits(32 * MIB, 4))
    mgr.create("box-11", CgroupLimits(32 * MIB, 4))
    mgr.close()
    assert cgroup_dirs(cg) == []
    assert (cg / "memory/stockade").is_dir()  # shared with other launchers: kept


def test_small_parsers() -> None:
    assert fs.parse_keyed(b"usage_usec 10\nnr_periods 0\nbad\n") == {
        "usage_usec": 10,
        "nr_periods": 0,
    }
    assert fs.parse_int(b"max\n") == -1 and fs.parse_int(b"42\n") == 42
    assert fs.parse_pids(b"1\n22\n") == [1, 22]
