"""Shared by the hostile-program tests: compiling the C attacks, running a program in a box,
reading what it printed, and checking the host after the box is gone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.launcher import Launcher
from sandbox.result import BoxResult
from sandbox.spec import MIB, BoxSpec, FileIn, Limits

HOSTILE_DIR = Path(__file__).resolve().parent / "hostile"
PYTHON = "/usr/bin/python3"

# Tight limits for every box. scratch_bytes is not the default on purpose: such a box is
# prepared on demand, so the launcher's pool of warm boxes stays as it was and the host
# check can compare it before and after.
TIGHT = Limits(
    cpu_time_s=1.0,
    wall_time_s=3.0,
    memory_bytes=64 * MIB,
    pids=16,
    output_bytes=256 * 1024,
    fsize_bytes=8 * MIB,
    scratch_bytes=16 * MIB,
    scratch_inodes=1024,
    nofile=64,
)

# Every Python attack starts with this: `attempt` runs one call and prints `name=ok` or
# `name=<errno name>`; `sys_call` makes a raw syscall through libc and returns -errno.
PY_PRELUDE = """
import ctypes, errno, os, sys
def say(key, value):
    print(f"{key}={value}", flush=True)
def attempt(name, fn, *args):
    try:
        ret = fn(*args)
    except OSError as e:
        say(name, errno.errorcode.get(e.errno, e.errno))
        return None
    say(name, "ok")
    return ret
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
def sys_call(nr, *args):
    conv = [a if isinstance(a, (bytes, ctypes.c_void_p)) else ctypes.c_long(a) for a in args]
    ret = _libc.syscall(ctypes.c_long(nr), *conv)
    return -ctypes.get_errno() if ret == -1 else ret
def sys_attempt(name, nr, *args):
    ret = sys_call(nr, *args)
    say(name, "ok" if ret >= 0 else errno.errorcode.get(-ret, -ret))
    return ret
"""


# ---------- compiling and running ----------


@pytest.fixture(scope="session")
def elves() -> Iterator[dict[str, bytes]]:
    """Every tests/privileged/hostile/*.c compiled once (gcc -O1), by name without .c."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: the C hostile programs cannot be built")
    sources = sorted(HOSTILE_DIR.glob("*.c"))
    with tempfile.TemporaryDirectory(prefix="stockade-hostile-") as out:

        def build(src: Path) -> tuple[str, bytes]:
            exe = os.path.join(out, src.stem)
            cmd = [gcc, "-O1", "-Wall", "-o", exe, str(src), "-lpthread"]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                pytest.fail(f"gcc failed on {src.name}:\n{done.stderr}")
            return src.stem, Path(exe).read_bytes()

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            yield dict(pool.map(build, sources))


def run_c(
    launcher: Launcher,
    elves: dict[str, bytes],
    name: str,
    *args: str,
    limits: Limits = TIGHT,
    **spec: Any,
) -> BoxResult:
    files = (FileIn(name, elves[name], 0o755), *spec.pop("files", ()))
    box = BoxSpec(argv=(f"/box/{name}", *args), files=files, limits=limits, **spec)
    return launcher.run(box)


def py_program(code: str) -> bytes:
    return (PY_PRELUDE + textwrap.dedent(code)).encode()


def run_py(
    launcher: Launcher,
    code: str,
    *args: str,
    limits: Limits = TIGHT,
    name: str = "attack.py",
    **spec: Any,
) -> BoxResult:
    files = (FileIn(name, py_program(code)), *spec.pop("files", ()))
    box = BoxSpec(argv=(PYTHON, f"/box/{name}", *args), files=files, limits=limits, **spec)
    return launcher.run(box)


def kv(r: BoxResult) -> dict[str, str]:
    """The `key=value` lines the program printed (the last value of a repeated key wins)."""
    out: dict[str, str] = {}
    for line in r.stdout.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def describe(r: BoxResult) -> str:
    return (
        f"status={r.status} exit={r.exit_code} signal={r.signal} message={r.message!r} "
        f"time={r.time:.3f} wall={r.wall_time:.3f} memory={r.memory}\n"
        f"stdout={r.stdout[-3000:]!r}\nstderr={r.stderr[-3000:]!r}"
    )


def all_denied(out: dict[str, str], keys: list[str], allowed: tuple[str, ...]) -> list[str]:
    """The keys whose outcome is not one of `allowed` (a missing key counts as wrong)."""
    return [f"{k}={out.get(k, '<missing>')}" for k in keys if out.get(k) not in allowed]


# ---------- the host, before and after ----------


def _slot_range(launcher: Launcher) -> range:
    cfg = launcher.config
    return range(cfg.first_uid, cfg.first_uid + cfg.slots)


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    uid: int
    nspid: tuple[int, ...]
    pidns: str
    cgroups: str
    cmdline: bytes


def read_proc(pid: int) -> Proc | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        pidns = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return Proc(
        pid=pid,
        ppid=int(fields["PPid"]),
        uid=int(fields["Uid"].split()[1]),  # effective uid
        nspid=tuple(int(x) for x in fields.get("NSpid", str(pid)).split()),
        pidns=pidns,
        cgroups=cgroups,
        cmdline=cmdline,
    )


def all_procs() -> dict[int, Proc]:
    procs: dict[int, Proc] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (p := read_proc(int(name))) is not None:
            procs[p.pid] = p
    return procs


def _in_our_cgroup(p: Proc) -> bool:
    """The launcher names box cgroups `<its pid>-<n>`; a process cannot leave its cgroup
    (no /sys, no privilege), and a cgroup with a process in it cannot be removed."""
    mine = re.compile(rf"/stockade/(?:[a-z]+-)?{os.getpid()}-\d+$")
    return any(mine.search(line) for line in p.cgroups.splitlines())


def _descends_from_us(p: Proc, procs: dict[int, Proc]) -> bool:
    me = os.getpid()
    cur: Proc | None = p
    for _ in range(64):
        if cur is None or cur.ppid in (0, 1):
            return False
        if cur.pid == me or cur.ppid == me:
            return True
        cur = procs.get(cur.ppid)
    return False


def our_slot_procs(launcher: Launcher) -> list[Proc]:
    """Slot-uid processes of this test run's launcher. Other engineers' test runs share the
    machine and the uid range (the slot locks are host-wide), so their boxes are left out:
    ours descend from this process or sit in a cgroup named after it."""
    uids = _slot_range(launcher)
    procs = all_procs()
    return [
        p
        for p in procs.values()
        if p.uid in uids and (_descends_from_us(p, procs) or _in_our_cgroup(p))
    ]


def leaked_processes(launcher: Launcher) -> list[str]:
    """Our slot-uid processes that are not a warm box's lone init (pid 1 of its own pid
    namespace, alone in it): those are exactly what a finished box left behind."""
    ours = our_slot_procs(launcher)
    per_ns: dict[str, int] = {}
    for p in ours:
        per_ns[p.pidns] = per_ns.get(p.pidns, 0) + 1
    bad = []
    for p in ours:
        lone_init = len(p.nspid) == 2 and p.nspid[-1] == 1 and per_ns[p.pidns] == 1
        if not lone_init:
            bad.append(f"pid {p.pid} uid {p.uid} nspid {p.nspid} {p.cmdline[:80]!r}")
    return bad


def stockade_mounts() -> set[str]:
    """Mounts in the host's namespace that look like a box's. Network namespace pins
    (nsfs, /run/netns/...) are left out: other test runs make them for networked boxes, and
    these hostile boxes never ask for a network."""
    found = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fstype = line.split(" - ", 1)[-1].split()[0]
            if fstype != "nsfs" and ("stockade" in line or "scratch" in line):
                found.add(line.strip())
    return found


def our_cgroup_dirs() -> list[str]:
    """Box cgroup directories made by this process's launcher (named `<pid>-<n>`)."""
    mine = re.compile(rf"^(?:[a-z]+-)?{os.getpid()}-\d+$")
    found = []
    for base in [
        *Path("/sys/fs/cgroup").glob("*/stockade"),
        Path("/sys/fs/cgroup/unified/stockade"),
    ]:
        if base.is_dir():
            found += [str(d) for d in base.iterdir() if d.is_dir() and mine.match(d.name)]
    return sorted(found)


def shmem_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Shmem:"):
            return int(line.split()[1])
    return 0


def shmem_settles(baseline_kib: int) -> bool:
    """True once the host's shmem is back within 16 MiB of `baseline_kib` (2 s at most):
    tmpfs and SysV pages a box held are freed a moment after it ends."""
    deadline = time.monotonic() + 2.0
    while shmem_kib() - baseline_kib >= 16 * 1024 and time.monotonic() < deadline:
        time.sleep(0.05)
    return shmem_kib() - baseline_kib < 16 * 1024


def host_sysv_keys() -> list[int]:
    """The keys of the host's SysV shared memory segments."""
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return [int(line.split()[0]) for line in lines]


def _wait_warm(launcher: Launcher) -> None:
    wait_full = getattr(getattr(launcher, "warm", None), "wait_full", None)
    if callable(wait_full):
        wait_full(10.0)


class HostGuard:
    """Snapshot of the host before a box; check() after it: nothing of the box may remain."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        launcher.settle()
        _wait_warm(launcher)
        self.mounts = stockade_mounts()
        self.cgroups = our_cgroup_dirs()
        self.shmem_kib = shmem_kib()

    def check(self) -> None:
        assert self.launcher.settle(), "launcher.settle() timed out: a box did not end"
        _wait_warm(self.launcher)
        deadline = time.monotonic() + 3.0
        while True:
            procs = leaked_processes(self.launcher)
            cgroups = our_cgroup_dirs()
            mounts = stockade_mounts() - self.mounts
            # The warm pool may now keep a box for a key it learned: its cgroup is not a leak.
            warm = self.launcher.container.warm.cgroup_names()
            new = set(cgroups) - set(self.cgroups)
            extra = len([c for c in new if os.path.basename(c) not in warm])
            if not procs and not mounts and extra <= 0:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not procs, f"processes of a finished box are still alive: {procs}"
        assert not mounts, f"new mounts on the host: {sorted(mounts)}"
        assert extra <= 0, f"cgroups left behind: before {self.cgroups}, after {cgroups}"


@pytest.fixture
def guard(launcher: Launcher) -> HostGuard:
    return HostGuard(launcher)
