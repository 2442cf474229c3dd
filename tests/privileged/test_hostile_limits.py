"""Hostile programs against the limits: fork, memory, tmpfs, disk, inode and descriptor
bombs, output floods, CPU spins, sleeping, stopping, and daemons that try to outlive the box."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import time
from typing import Any

import pytest

from sandbox.launcher import Launcher
from sandbox.result import Status
from sandbox.spec import MIB, Limits
from tests.privileged import hostile_util as hu

pytestmark = pytest.mark.privileged

elves = hu.elves
guard = hu.guard


def limits(**changes: Any) -> Limits:
    return dataclasses.replace(hu.TIGHT, **changes)


def _host_can_fork() -> bool:
    return subprocess.run(["/bin/true"], check=False, timeout=10).returncode == 0


def test_fork_bomb(launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard) -> None:
    lim = limits(cpu_time_s=0.5, pids=16)
    started = time.monotonic()
    r = hu.run_c(launcher, elves, "forkbomb", limits=lim)
    took = time.monotonic() - started
    guard.check()
    assert _host_can_fork()
    assert r.status == Status.TO, hu.describe(r)
    assert r.time >= lim.cpu_time_s and took < lim.wall_time_s + 2
    assert hu.kv(r)["bomb"] == "1"


def test_fork_count_stops_at_pids_limit(
    launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard
) -> None:
    lim = limits(pids=16)
    r = hu.run_c(launcher, elves, "forkcount", limits=lim)
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["fork_error"] == "EAGAIN"
    # init and the program count against pids.max too.
    assert lim.pids - 4 <= int(out["forked"]) <= lim.pids - 2, hu.describe(r)


def test_fork_bomb_outliving_its_parent(
    launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard
) -> None:
    r = hu.run_c(launcher, elves, "forkbomb_exit", limits=limits(pids=16))
    guard.check()
    assert _host_can_fork()
    assert r.status == Status.OK, hu.describe(r)
    assert hu.kv(r)["parent_exits"] == "1"
    assert r.wall_time < 1.5


PY_MEMORY_BOMB = "blocks = []\nwhile True:\n    blocks.append(bytearray(1 << 20))\n"


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        pytest.param("c", "", id="c-malloc"),
        pytest.param("py", PY_MEMORY_BOMB, id="python-bytearray"),
    ],
)
def test_memory_bomb(
    launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard, kind: str, code: str
) -> None:
    lim = limits(memory_bytes=64 * MIB)
    if kind == "c":
        r = hu.run_c(launcher, elves, "membomb", limits=lim)
    else:
        r = hu.run_py(launcher, code, limits=lim)
    guard.check()
    assert r.status == Status.MLE, hu.describe(r)
    assert 0.9 * lim.memory_bytes <= r.memory <= 1.05 * lim.memory_bytes, hu.describe(r)


TMPFS_BOMB = """
totals = {}
block = b"T" * (1 << 20)
for d in ("/tmp", "/dev/shm"):
    n = 0
    try:
        with open(d + "/bomb", "wb") as f:
            while True:
                f.write(block)
                f.flush()
                n += len(block)
    except OSError as e:
        say(d.replace("/", "_") + "_error", errno.errorcode[e.errno])
    totals[d] = n
    say(d.replace("/", "_") + "_bytes", n)
st = os.statvfs("/tmp")
say("free_blocks", st.f_bavail)
"""


def test_tmpfs_bomb(launcher: Launcher, guard: hu.HostGuard) -> None:
    lim = limits(scratch_bytes=32 * MIB, fsize_bytes=256 * MIB, memory_bytes=128 * MIB)
    r = hu.run_py(launcher, TMPFS_BOMB, limits=lim)
    guard.check()
    # The scratch tmpfs is gone, and its memory with it (polled: freeing is not instant).
    deadline = time.monotonic() + 2.0
    while hu.shmem_kib() - guard.shmem_kib >= 16 * 1024 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hu.shmem_kib() - guard.shmem_kib < 16 * 1024
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["_tmp_error"] == out["_dev_shm_error"] == "ENOSPC"
    filled = int(out["_tmp_bytes"]) + int(out["_dev_shm_bytes"])
    assert lim.scratch_bytes - 2 * MIB <= filled <= lim.scratch_bytes, hu.describe(r)
    assert out["free_blocks"] == "0"


SYSV_SHM_BOMB = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
size = int(sys.argv[1])
ids = []
for key in range(0x5100, 0x5140):
    shm = libc.shmget(key, size, 0o1600)  # IPC_CREAT | 0600, never IPC_RMID: left behind
    if shm < 0:
        say("shmget_error", errno.errorcode[ctypes.get_errno()])
        break
    addr = libc.shmat(shm, None, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        say("shmat_error", errno.errorcode[ctypes.get_errno()])
        break
    ctypes.memset(addr, 0x5A, size)
    ids.append(shm)
    say("segments", len(ids))
"""


def test_sysv_shm_left_behind_is_freed(launcher: Launcher, guard: hu.HostGuard) -> None:
    """SysV segments outlive their creator until their IPC namespace dies: 8 MiB segments
    made until the memory limit ends the program, none removed, must all go with the box."""
    lim = limits(memory_bytes=64 * MIB)
    r = hu.run_py(launcher, SYSV_SHM_BOMB, str(8 * MIB), limits=lim)
    guard.check()
    assert hu.shmem_settles(guard.shmem_kib)
    assert not [k for k in hu.host_sysv_keys() if 0x5100 <= k < 0x5140]
    assert r.status == Status.MLE, hu.describe(r)
    assert int(hu.kv(r).get("segments", 0)) >= 3, hu.describe(r)


def test_disk_fill_hits_fsize(
    launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard
) -> None:
    lim = limits(fsize_bytes=4 * MIB, scratch_bytes=16 * MIB)
    r = hu.run_c(launcher, elves, "diskfill", "/box/big", limits=lim)
    guard.check()
    assert r.status == Status.SG and r.signal == 25, hu.describe(r)  # SIGXFSZ
    assert int(hu.kv(r)["written"]) == lim.fsize_bytes


def test_disk_fill_hits_scratch_cap(
    launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard
) -> None:
    lim = limits(fsize_bytes=64 * MIB, scratch_bytes=8 * MIB)
    r = hu.run_c(launcher, elves, "diskfill", "/box/big", limits=lim)
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["error"] == "ENOSPC"
    assert lim.scratch_bytes - MIB <= int(out["total"]) <= lim.scratch_bytes


def test_inode_fill(launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard) -> None:
    lim = limits(scratch_inodes=256)
    r = hu.run_c(launcher, elves, "inodes", limits=lim)
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["error"] == "ENOSPC"
    assert lim.scratch_inodes - 16 <= int(out["created"]) < lim.scratch_inodes


def test_fd_exhaustion(launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard) -> None:
    lim = limits(nofile=64)
    r = hu.run_c(launcher, elves, "fdbomb", limits=lim)
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["error"] == "EMFILE"
    assert int(out["start"]) + int(out["opened"]) == lim.nofile


def test_stdout_flood(launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard) -> None:
    lim = limits(output_bytes=64 * 1024)
    r = hu.run_c(launcher, elves, "flood", limits=lim)
    guard.check()
    assert r.status == Status.OLE, hu.describe(r)
    assert len(r.stdout) + len(r.stderr) <= lim.output_bytes
    assert r.wall_time < 1.0


STDERR_FLOOD = """
line = "E" * 4095 + "\\n"
while True:
    sys.stderr.write(line)
"""


def test_stderr_flood(launcher: Launcher, guard: hu.HostGuard) -> None:
    lim = limits(output_bytes=64 * 1024)
    r = hu.run_py(launcher, STDERR_FLOOD, limits=lim)
    guard.check()
    assert r.status == Status.OLE, hu.describe(r)
    assert len(r.stdout) + len(r.stderr) <= lim.output_bytes
    assert r.stderr.startswith(b"EEEE")


def test_cpu_spin(launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard) -> None:
    lim = limits(cpu_time_s=0.5)
    r = hu.run_c(launcher, elves, "spin", limits=lim)
    guard.check()
    assert r.status == Status.TO, hu.describe(r)
    assert r.time >= lim.cpu_time_s and "CPU" in r.message


def test_cpu_spin_threads_counted_together(
    launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard
) -> None:
    lim = limits(cpu_time_s=1.0)
    r = hu.run_c(launcher, elves, "threads_spin", limits=lim)
    guard.check()
    assert r.status == Status.TO, hu.describe(r)
    assert r.time >= lim.cpu_time_s and "CPU" in r.message
    per_thread = [float(v) for v in re.findall(rb"thread\d_cpu=([0-9.]+)", r.stdout)]
    assert per_thread, hu.describe(r)
    # No thread came near the limit alone: only the sum of all five reached it.
    assert max(per_thread) < 0.6 * lim.cpu_time_s, hu.describe(r)


SLEEPER = "import time\nsay('sleeping', 1)\ntime.sleep(3600)\n"


def test_sleep_hits_wall_clock(launcher: Launcher, guard: hu.HostGuard) -> None:
    lim = limits(wall_time_s=1.0)
    r = hu.run_py(launcher, SLEEPER, limits=lim)
    guard.check()
    assert r.status == Status.TO and "wall" in r.message, hu.describe(r)
    assert lim.wall_time_s <= r.wall_time < lim.wall_time_s + 1.0
    assert r.time < 0.5


def test_sigstop_self_is_not_a_hang(
    launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard
) -> None:
    lim = limits(wall_time_s=1.0)
    started = time.monotonic()
    r = hu.run_c(launcher, elves, "sigstop", limits=lim)
    took = time.monotonic() - started
    guard.check()
    assert r.status == Status.TO and "wall" in r.message, hu.describe(r)
    assert took < lim.wall_time_s + 2.0
    out = hu.kv(r)
    assert out["stopping"] == "1" and "resumed" not in out


def test_double_fork_daemon(
    launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard
) -> None:
    """The daemon holds the stdout pipe and ignores every signal it can: the box must still
    end when the program does, and take the daemon with it."""
    r = hu.run_c(launcher, elves, "daemon")
    guard.check()  # no process of the daemon's uid and pid namespace survives
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert int(out["daemon_pid"]) > 2 and out["program_exits"] == "1"
    assert r.wall_time < hu.TIGHT.wall_time_s / 2, hu.describe(r)


PY_DAEMON = """
import signal, time
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1):
    signal.signal(s, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        say("daemon", os.getpid())
        while True:
            if os.fork() == 0:  # keeps making fresh children, in case one is missed
                time.sleep(0.05)
                os._exit(0)
            time.sleep(0.01)
    os._exit(0)
os.wait()
say("program_exits", 1)
"""


def test_python_daemon_that_keeps_forking(launcher: Launcher, guard: hu.HostGuard) -> None:
    r = hu.run_py(launcher, PY_DAEMON)
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert "daemon" in out and out["program_exits"] == "1"
    assert r.wall_time < hu.TIGHT.wall_time_s / 2, hu.describe(r)


RLIMITS = """
import resource
for name in ("RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_CORE"):
    res = getattr(resource, name)
    soft, hard = resource.getrlimit(res)
    try:
        resource.setrlimit(res, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        say(name, "raised")
    except (ValueError, OSError) as e:
        say(name, "refused")
    say(name + "_now", resource.getrlimit(res)[1])
"""


def test_rlimits_cannot_be_raised(launcher: Launcher, guard: hu.HostGuard) -> None:
    r = hu.run_py(launcher, RLIMITS)
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    lim = hu.TIGHT
    for name in ("RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_CORE"):
        assert out[name] == "refused", f"{name} was raised: {hu.describe(r)}"
    assert int(out["RLIMIT_NOFILE_now"]) == lim.nofile
    assert int(out["RLIMIT_FSIZE_now"]) == lim.fsize_bytes
    assert int(out["RLIMIT_CORE_now"]) == 0
