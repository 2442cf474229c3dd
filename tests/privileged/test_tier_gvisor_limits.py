"""test_hostile_limits.py's programs on the gVisor tier: each bomb is held by the host
cgroup around the Sentry (memory, pids backstop, CPU watched from the host), the scratch
tmpfs and the rlimits the Sentry applies, and leaves no runsc process, cgroup or mount."""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import pytest

from sandbox.backends.gvisor.bundle import SENTRY_MEMORY_BYTES
from sandbox.launcher import Launcher
from sandbox.result import Status
from sandbox.spec import MIB, Limits
from tests.privileged import hostile_util as hu
from tests.privileged import test_hostile_limits as li
from tests.privileged.test_tier_gvisor import gvisor_usable, nothing_left
from tests.privileged.test_tier_gvisor_containment import (
    GROUP_LIMITS,
    Probe,
    _host_unchanged,
    check_counts_descriptors_rlimits,
    host_canaries,
    run_group,
)

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
elves = hu.elves
__all__ = ["_host_unchanged", "gvisor_usable", "host_canaries", "nothing_left"]
G = {"tier": "gvisor"}


def limits(**changes: Any) -> Limits:
    return dataclasses.replace(hu.TIGHT, **changes)


def test_fork_bomb(launcher: Launcher, elves: dict[str, bytes]) -> None:
    lim = limits(cpu_time_s=0.5, pids=16)
    started = time.monotonic()
    r = hu.run_c(launcher, elves, "forkbomb", limits=lim, **G)
    took = time.monotonic() - started
    assert li._host_can_fork()
    assert r.status == Status.TO, hu.describe(r)
    # Killing the Sentry and a stub per task takes longer than a container's teardown.
    assert r.time >= lim.cpu_time_s and took < lim.wall_time_s + 2
    assert hu.kv(r)["bomb"] == "1"


def test_fork_count_descriptors_and_rlimits(launcher: Launcher, elves: dict[str, bytes]) -> None:
    """forkcount, fdbomb and RLIMITS in one box under the group's sh."""
    probes = [
        Probe("forkcount", elf="forkcount"),
        Probe("fdbomb", elf="fdbomb"),
        Probe("rlimits", li.RLIMITS),
    ]
    g = run_group(launcher, probes, elves)
    # The Sentry holds the task count by RLIMIT_NPROC = pids.
    check_counts_descriptors_rlimits(g, GROUP_LIMITS)


def test_fork_bomb_outliving_its_parent(launcher: Launcher, elves: dict[str, bytes]) -> None:
    r = hu.run_c(launcher, elves, "forkbomb_exit", limits=limits(pids=16), **G)
    assert li._host_can_fork()
    assert r.status == Status.OK, hu.describe(r)
    assert hu.kv(r)["parent_exits"] == "1"
    assert r.wall_time < 1.5  # the sandbox ends with its pid 1, orphans and all


@pytest.mark.parametrize("kind", ["c", "py"], ids=["c-malloc", "python-bytearray"])
def test_memory_bomb(launcher: Launcher, elves: dict[str, bytes], kind: str) -> None:
    """MLE from the watcher once the program's own pages (the Sentry's memory file, the
    cgroup's shmem) pass the spec's memory, sampled every 10 ms: a C program touching
    pages as fast as it can was killed at 64.4-64.5 MiB of a 64 MiB limit in ten runs
    alone, 76 MiB once while the whole module ran. The host cgroup's cap (the Sentry's
    allowance on top) is never reached."""
    lim = limits(memory_bytes=64 * MIB)
    if kind == "c":
        r = hu.run_c(launcher, elves, "membomb", limits=lim, **G)
    else:
        r = hu.run_py(launcher, li.PY_MEMORY_BOMB, limits=lim, **G)
    assert r.status == Status.MLE, hu.describe(r)
    cap = lim.memory_bytes + SENTRY_MEMORY_BYTES
    assert lim.memory_bytes < r.memory < lim.memory_bytes + 32 * MIB < cap, hu.describe(r)
    if kind == "c":
        reached = [int(v) for v in re.findall(rb"mib=(\d+)", r.stdout)]
        assert 48 <= max(reached) < (lim.memory_bytes + 32 * MIB) // MIB, hu.describe(r)


def test_tmpfs_bomb(launcher: Launcher) -> None:
    lim = limits(scratch_bytes=32 * MIB, fsize_bytes=256 * MIB, memory_bytes=128 * MIB)
    before = hu.shmem_kib()
    r = hu.run_py(launcher, li.TMPFS_BOMB, limits=lim, **G)
    assert hu.shmem_settles(before)
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["_tmp_error"] == out["_dev_shm_error"] == "ENOSPC"
    filled = int(out["_tmp_bytes"]) + int(out["_dev_shm_bytes"])
    assert lim.scratch_bytes - 2 * MIB <= filled <= lim.scratch_bytes, hu.describe(r)
    assert out["free_blocks"] == "0"


def test_sysv_shm_left_behind_is_freed(launcher: Launcher) -> None:
    """The segments are the Sentry's (its memory file, charged to the box cgroup): MLE,
    and nothing in the host's SysV table or shmem once the Sentry is gone."""
    before = hu.shmem_kib()
    r = hu.run_py(
        launcher, li.SYSV_SHM_BOMB, str(8 * MIB), limits=limits(memory_bytes=64 * MIB), **G
    )
    assert hu.shmem_settles(before)
    assert not [k for k in hu.host_sysv_keys() if 0x5100 <= k < 0x5140]
    assert r.status == Status.MLE, hu.describe(r)
    assert int(hu.kv(r).get("segments", 0)) >= 3, hu.describe(r)


def test_disk_fill_hits_fsize(launcher: Launcher, elves: dict[str, bytes]) -> None:
    lim = limits(fsize_bytes=4 * MIB, scratch_bytes=16 * MIB)
    r = hu.run_c(launcher, elves, "diskfill", "/box/big", limits=lim, **G)
    assert r.status == Status.SG and r.signal == 25, hu.describe(r)  # SIGXFSZ
    assert int(hu.kv(r)["written"]) == lim.fsize_bytes


def test_disk_fill_hits_scratch_cap(launcher: Launcher, elves: dict[str, bytes]) -> None:
    lim = limits(fsize_bytes=64 * MIB, scratch_bytes=8 * MIB)
    r = hu.run_c(launcher, elves, "diskfill", "/box/big", limits=lim, **G)
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["error"] == "ENOSPC"
    assert lim.scratch_bytes - MIB <= int(out["total"]) <= lim.scratch_bytes


def test_inode_fill(launcher: Launcher, elves: dict[str, bytes]) -> None:
    lim = limits(scratch_inodes=256)
    r = hu.run_c(launcher, elves, "inodes", limits=lim, **G)
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["error"] == "ENOSPC"
    assert lim.scratch_inodes - 16 <= int(out["created"]) < lim.scratch_inodes


@pytest.mark.parametrize("kind", ["stdout", "stderr"])
def test_output_flood(launcher: Launcher, elves: dict[str, bytes], kind: str) -> None:
    lim = limits(output_bytes=64 * 1024)
    if kind == "stdout":
        r = hu.run_c(launcher, elves, "flood", limits=lim, **G)
    else:
        r = hu.run_py(launcher, li.STDERR_FLOOD, limits=lim, **G)
    assert r.status == Status.OLE, hu.describe(r)
    assert len(r.stdout) + len(r.stderr) <= lim.output_bytes
    assert (r.stdout if kind == "stdout" else r.stderr)[:4] in (b"AAAA", b"EEEE")
    assert r.wall_time < 1.0


def test_cpu_spin(launcher: Launcher, elves: dict[str, bytes]) -> None:
    lim = limits(cpu_time_s=0.5)
    r = hu.run_c(launcher, elves, "spin", limits=lim, **G)
    assert r.status == Status.TO and "CPU" in r.message, hu.describe(r)
    assert lim.cpu_time_s <= r.time < lim.cpu_time_s + 0.2, hu.describe(r)


def test_cpu_spin_threads_counted_together(launcher: Launcher, elves: dict[str, bytes]) -> None:
    """Five spinning threads: the host cgroup counts them together and the box ends at
    the limit. The per-thread figures are the Sentry's clocks, which count time a task
    waits for a host CPU (5 threads, 2 cores: their sum exceeds the host's figure), so
    they are only checked to come from five threads."""
    lim = limits(cpu_time_s=1.0)
    r = hu.run_c(launcher, elves, "threads_spin", limits=lim, **G)
    assert r.status == Status.TO and "CPU" in r.message, hu.describe(r)
    assert lim.cpu_time_s <= r.time < lim.cpu_time_s + 0.2, hu.describe(r)
    threads = set(re.findall(rb"thread(\d)_cpu=", r.stdout))
    assert hu.kv(r)["threads"] == "5" and len(threads) == 5, hu.describe(r)


@pytest.mark.parametrize("kind", ["sleep", "sigstop"])
def test_sleeping_or_stopped_program_hits_the_wall_clock(
    launcher: Launcher, elves: dict[str, bytes], kind: str
) -> None:
    lim = limits(wall_time_s=1.0)
    started = time.monotonic()
    if kind == "sleep":
        r = hu.run_py(launcher, li.SLEEPER, limits=lim, **G)
    else:
        r = hu.run_c(launcher, elves, "sigstop", limits=lim, **G)
    took = time.monotonic() - started
    assert r.status == Status.TO and "wall" in r.message, hu.describe(r)
    assert lim.wall_time_s <= r.wall_time < lim.wall_time_s + 1.0 and took < 3.0
    assert r.time < 0.5
    out = hu.kv(r)
    if kind == "sigstop":
        assert out["stopping"] == "1" and "resumed" not in out
    else:
        assert out["sleeping"] == "1"


def test_double_fork_daemon(launcher: Launcher, elves: dict[str, bytes]) -> None:
    """The daemon holds stdout and ignores what it can: the sandbox ends with its pid 1
    (the program), taking the daemon with it (nothing_left: no runsc process remains)."""
    r = hu.run_c(launcher, elves, "daemon", **G)
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert int(out["daemon_pid"]) > 2 and out["program_exits"] == "1"
    assert r.wall_time < hu.TIGHT.wall_time_s / 2, hu.describe(r)


def test_python_daemon_that_keeps_forking(launcher: Launcher) -> None:
    r = hu.run_py(launcher, li.PY_DAEMON, **G)
    assert r.status == Status.OK, hu.describe(r)
    # The daemon's own line may be lost: the sandbox can end (pid 1 exits) before the
    # grandchild prints, which the container tier's init waits for no more than gVisor.
    assert hu.kv(r)["program_exits"] == "1", hu.describe(r)
    assert r.wall_time < hu.TIGHT.wall_time_s / 2, hu.describe(r)
