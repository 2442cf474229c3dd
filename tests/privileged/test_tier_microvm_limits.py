"""test_hostile_limits.py's programs on the microVM tier: the guest's cgroup2 (memory.max,
pids.max, cpu.stat watched by the agent), the scratch tmpfs in guest RAM and the rlimits
the agent sets. The fork bomb, the C memory bomb and the stdout flood are in
test_tier_microvm_containment.py. QEMU is the only host process of a box: nothing_left
checks that none of ours remains beyond the pool's."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sandbox.launcher import Launcher
from sandbox.result import Status
from sandbox.spec import MIB, Limits
from tests.privileged import hostile_util as hu
from tests.privileged import test_hostile_limits as li
from tests.privileged.test_tier_gvisor_containment import (
    _host_unchanged,
    check_counts_descriptors_rlimits,
    host_canaries,
)
from tests.privileged.test_tier_microvm import nothing_left
from tests.privileged.tier_groups import (
    MVM_GROUP_LIMITS,
    Probe,
    microvm_usable,
    no_new_mounts,
    run_c,
    run_group,
    run_py,
)

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
elves = hu.elves
__all__ = ["_host_unchanged", "host_canaries", "microvm_usable", "no_new_mounts", "nothing_left"]


def limits(**changes: Any) -> Limits:
    return dataclasses.replace(hu.TIGHT, **changes)


def test_fork_count_descriptors_rlimits_and_fsize(
    launcher: Launcher, elves: dict[str, bytes]
) -> None:
    """forkcount, fdbomb, RLIMITS and diskfill against RLIMIT_FSIZE in one VM."""
    probes = [
        Probe("forkcount", elf="forkcount"),
        Probe("fdbomb", elf="fdbomb"),
        Probe("rlimits", li.RLIMITS),
        Probe("diskfill", elf="diskfill", args=("/box/big",)),
    ]
    g = run_group(launcher, probes, elves)
    lim = MVM_GROUP_LIMITS
    # The guest's pids.max counts the group's sh and forkcount; the agent is outside the
    # box cgroup (a container box's init is inside: pids - 3 or so there).
    check_counts_descriptors_rlimits(g, lim)
    # SIGXFSZ: the shell reports 128 + 25.
    assert g.rcs["diskfill"] == "153" and int(g["diskfill"]["written"]) == lim.fsize_bytes


def test_fork_bomb_outliving_its_parent(launcher: Launcher, elves: dict[str, bytes]) -> None:
    r = run_c(launcher, elves, "forkbomb_exit", limits=limits(pids=16, wall_time_s=10.0))
    assert li._host_can_fork()
    assert r.status == Status.OK, hu.describe(r)
    assert hu.kv(r)["parent_exits"] == "1"
    # The agent kills the box cgroup (cgroup.kill) once the program is gone.
    assert r.wall_time < 1.5, hu.describe(r)


def test_python_memory_bomb(launcher: Launcher) -> None:
    lim = limits(memory_bytes=64 * MIB, cpu_time_s=10.0, wall_time_s=20.0)
    r = run_py(launcher, li.PY_MEMORY_BOMB, limits=lim)
    assert r.status == Status.MLE, hu.describe(r)
    assert 0.9 * lim.memory_bytes <= r.memory <= 1.05 * lim.memory_bytes, hu.describe(r)


def test_tmpfs_bomb(launcher: Launcher) -> None:
    """/tmp is the overlay's upper on the scratch tmpfs (in guest RAM: the host's shmem is
    not touched). The agent's /dev has no shm: ENOENT, where a container box's is full."""
    lim = limits(
        scratch_bytes=32 * MIB, fsize_bytes=256 * MIB, memory_bytes=128 * MIB, wall_time_s=20.0
    )
    lim = dataclasses.replace(lim, cpu_time_s=10.0)
    before = hu.shmem_kib()
    r = run_py(launcher, li.TMPFS_BOMB, limits=lim)
    assert hu.shmem_kib() - before < 16 * 1024
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["_tmp_error"] == "ENOSPC" and out["_dev_shm_error"] == "ENOENT", hu.describe(r)
    assert out["_dev_shm_bytes"] == "0"
    assert lim.scratch_bytes - 2 * MIB <= int(out["_tmp_bytes"]) <= lim.scratch_bytes
    assert out["free_blocks"] == "0"


def test_sysv_shm_left_behind_is_freed(launcher: Launcher) -> None:
    """The segments are the guest kernel's, charged to the box's cgroup: MLE, and they end
    with the VM; the host's SysV table and shmem never see them."""
    before = hu.shmem_kib()
    lim = limits(memory_bytes=64 * MIB, cpu_time_s=10.0, wall_time_s=20.0)
    r = run_py(launcher, li.SYSV_SHM_BOMB, str(8 * MIB), limits=lim)
    assert hu.shmem_kib() - before < 16 * 1024
    assert not [k for k in hu.host_sysv_keys() if 0x5100 <= k < 0x5140]
    assert r.status == Status.MLE, hu.describe(r)
    assert int(hu.kv(r).get("segments", 0)) >= 3, hu.describe(r)


def test_disk_fill_hits_scratch_cap(launcher: Launcher, elves: dict[str, bytes]) -> None:
    lim = limits(fsize_bytes=64 * MIB, scratch_bytes=8 * MIB)
    r = run_c(launcher, elves, "diskfill", "/box/big", limits=lim)
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["error"] == "ENOSPC"
    assert lim.scratch_bytes - MIB <= int(out["total"]) <= lim.scratch_bytes


def test_inode_fill(launcher: Launcher, elves: dict[str, bytes]) -> None:
    lim = limits(scratch_inodes=256)
    r = run_c(launcher, elves, "inodes", limits=lim)
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["error"] == "ENOSPC"
    assert lim.scratch_inodes - 16 <= int(out["created"]) < lim.scratch_inodes


def test_stderr_flood(launcher: Launcher) -> None:
    lim = limits(output_bytes=64 * 1024, cpu_time_s=10.0, wall_time_s=20.0)
    r = run_py(launcher, li.STDERR_FLOOD, limits=lim)
    assert r.status == Status.OLE, hu.describe(r)
    assert len(r.stdout) + len(r.stderr) <= lim.output_bytes
    assert r.stderr.startswith(b"EEEE")


def test_cpu_spin(launcher: Launcher, elves: dict[str, bytes]) -> None:
    lim = limits(cpu_time_s=0.5)
    r = run_c(launcher, elves, "spin", limits=lim)
    assert r.status == Status.TO and "CPU" in r.message, hu.describe(r)
    # The agent reads cpu.stat every 10 ms.
    assert lim.cpu_time_s <= r.time < lim.cpu_time_s + 0.2, hu.describe(r)


def test_cpu_spin_threads_counted_together(launcher: Launcher, elves: dict[str, bytes]) -> None:
    """Five threads on the one vCPU: the guest cgroup counts them together."""
    lim = limits(cpu_time_s=1.0)
    r = run_c(launcher, elves, "threads_spin", limits=lim)
    assert r.status == Status.TO and "CPU" in r.message, hu.describe(r)
    assert lim.cpu_time_s <= r.time < lim.cpu_time_s + 0.2, hu.describe(r)
    # Each thread prints its clock as it goes: the last figure of each counts.
    out = hu.kv(r)
    per_thread = [float(out[f"thread{i}_cpu"]) for i in range(5)]
    assert out["threads"] == "5" and max(per_thread) < 0.6 * lim.cpu_time_s, hu.describe(r)


@pytest.mark.parametrize("kind", ["sleep", "sigstop"])
def test_sleeping_or_stopped_program_hits_the_wall_clock(
    launcher: Launcher, elves: dict[str, bytes], kind: str
) -> None:
    # Python's start in a fresh VM under TCG may take over a second of CPU and wall.
    lim = limits(wall_time_s=4.0, cpu_time_s=5.0)
    if kind == "sleep":
        r = run_py(launcher, li.SLEEPER, limits=lim)
    else:
        r = run_c(launcher, elves, "sigstop", limits=lim)
    assert r.status == Status.TO and "wall" in r.message, hu.describe(r)
    assert lim.wall_time_s <= r.wall_time < lim.wall_time_s + 0.5, hu.describe(r)
    assert r.time < lim.wall_time_s
    out = hu.kv(r)
    if kind == "sigstop":
        assert out["stopping"] == "1" and "resumed" not in out
    else:
        assert out["sleeping"] == "1"


def test_double_fork_daemon(launcher: Launcher, elves: dict[str, bytes]) -> None:
    """The daemon holds stdout and ignores every signal: cgroup.kill takes it anyway."""
    r = run_c(launcher, elves, "daemon")
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert int(out["daemon_pid"]) > 2 and out["program_exits"] == "1"
    assert r.wall_time < hu.TIGHT.wall_time_s / 2, hu.describe(r)


def test_python_daemon_that_keeps_forking(launcher: Launcher) -> None:
    lim = limits(cpu_time_s=10.0, wall_time_s=20.0)
    r = run_py(launcher, li.PY_DAEMON, limits=lim)
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert "daemon" in out and out["program_exits"] == "1", hu.describe(r)
    # The daemon's forks share the one vCPU with the program under TCG: seconds, but the
    # box ends with the program, far from the wall limit.
    assert r.wall_time < lim.wall_time_s / 2, hu.describe(r)
