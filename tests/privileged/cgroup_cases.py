"""Real-kernel checks shared by the v1 and v2 cgroup tests: children that burn, allocate, fork."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from sandbox.cgroups import CgroupLimits, join_in_child
from sandbox.cgroups.base import BaseCgroup, BaseManager

MIB = 1 << 20


class Boxes:
    """The cgroups and processes one test made; close() kills and removes them all, by the
    pids it started and through the cgroups it created, even after a failed assertion."""

    def __init__(self, manager: BaseManager) -> None:
        self.manager = manager
        self.cgroups: list[BaseCgroup] = []
        self.pids: list[int] = []

    def create(self, memory_bytes: int = 256 * MIB, pids: int = 64) -> BaseCgroup:
        name = f"test-{os.getpid()}-{len(self.cgroups)}-{time.monotonic_ns() % 10**9}"
        cg = self.manager.create(name, CgroupLimits(memory_bytes, pids))
        self.cgroups.append(cg)
        return cg

    def spawn(self, cg: BaseCgroup, code: str, stdout: int | None = None) -> int:
        """Fork; the child joins cg, then execs a fresh Python running code."""
        pid = os.fork()
        if pid == 0:
            try:
                if stdout is not None:
                    os.dup2(stdout, 1)
                join_in_child(cg.join_fds())
                os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", code])
            finally:
                os._exit(127)
        self.pids.append(pid)
        return pid

    def wait(self, pid: int, timeout_s: float = 20.0) -> tuple[int, float]:
        """(wait status, CPU seconds from rusage), or fail after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            got, status, usage = os.wait4(pid, os.WNOHANG)
            if got == pid:
                self.pids.remove(pid)
                return status, usage.ru_utime + usage.ru_stime
            if time.monotonic() > deadline:
                pytest.fail(f"child {pid} still running after {timeout_s} s")
            time.sleep(0.005)

    def close(self) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ChildProcessError, ProcessLookupError):
                pass
        errors: list[Exception] = []
        for cg in self.cgroups:
            sweep(cg)
            try:
                cg.destroy()
            except Exception as e:
                errors.append(e)
        try:
            self.manager.close()
        except Exception as e:
            errors.append(e)
        if errors:
            raise errors[0]


def sweep(cg: BaseCgroup) -> None:
    """Test-side last resort that does not trust the code under test: thaw, then SIGKILL
    whatever each of the test's own cgroups lists until it is empty."""
    for path in cg.paths:
        for thaw, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
            with contextlib.suppress(OSError):
                Path(path, thaw).write_text(value)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                pids = Path(path, "cgroup.procs").read_text().split()
            except OSError:
                break
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.01)


def procs(cg: BaseCgroup) -> list[int]:
    return [int(p) for p in Path(cg.paths[0], "cgroup.procs").read_text().split()]


def read_line(fd: int, timeout_s: float = 10.0) -> str:
    data = b""
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], timeout_s)
        assert ready, f"no output in {timeout_s} s"
        chunk = os.read(fd, 4096)
        assert chunk, "child closed its output early"
        data += chunk
    return data.decode()


def check_cpu_time(boxes: Boxes) -> None:
    cg = boxes.create()
    # rusage also counts the forked child's work before it joins the cgroup (copy-on-write
    # faults of the test's own memory): 1 s of burning keeps that share small, also under
    # the v2 lab's emulation, where it took 32 ms against 0.39 s.
    pid = boxes.spawn(cg, "import time\nwhile time.process_time() < 1.0: pass\n")
    status, used = boxes.wait(pid)
    assert os.waitstatus_to_exitcode(status) == 0
    assert used >= 1.0
    assert cg.cpu_time_s() == pytest.approx(used, rel=0.05), (cg.cpu_time_s(), used)


def check_memory_peak(boxes: Boxes) -> None:
    touch = "b = bytearray({n} << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
    peaks = []
    for n in (0, 50):
        cg = boxes.create()
        status, _ = boxes.wait(boxes.spawn(cg, touch.format(n=n)))
        assert os.waitstatus_to_exitcode(status) == 0
        assert not cg.oom_killed()
        peaks.append(cg.memory_peak_bytes())
    baseline, peak = peaks
    # The interpreter's own heap (about 3 MiB) comes on top of the 50 MiB.
    assert 50 * MIB <= peak <= 55 * MIB, peak / MIB
    assert peak - baseline == pytest.approx(50 * MIB, rel=0.1)


def check_shmem(boxes: Boxes) -> None:
    """A memfd's pages are the box's shmem, an anonymous heap's are not: the gVisor tier
    tells the program's memory (the Sentry's memory file) from the Sentry's own this way."""
    hold = (
        "import os, sys, time\n"
        "heap = bytearray(20 << 20)\n"
        "for i in range(0, len(heap), 4096): heap[i] = 1\n"
        "fd = os.memfd_create('held')\n"
        "os.write(fd, b'x' * ({n} << 20))\n"
        "print('held', flush=True)\n"
        "time.sleep(30)\n"
    )
    for n, low, high in ((0, 0, 4 * MIB), (30, 30 * MIB, 34 * MIB)):
        cg = boxes.create()
        r, w = os.pipe()
        pid = boxes.spawn(cg, hold.format(n=n), stdout=w)
        os.close(w)
        try:
            assert read_line(r) == "held\n"
            assert low <= cg.shmem_bytes() <= high, (n, cg.shmem_bytes() / MIB)
        finally:
            os.close(r)
            os.kill(pid, signal.SIGKILL)
            boxes.wait(pid)


def check_oom_kill(boxes: Boxes) -> None:
    cg = boxes.create(memory_bytes=32 * MIB)
    started = time.monotonic()
    code = "b = bytearray(100 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
    status, _ = boxes.wait(boxes.spawn(cg, code))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert cg.oom_killed()
    assert cg.memory_peak_bytes() <= 32 * MIB
    assert time.monotonic() - started < 5.0


def check_pids_limit(boxes: Boxes) -> None:
    cg = boxes.create(pids=8)
    r, w = os.pipe()
    code = (
        "import os, time\n"
        "made = 0\n"
        "for _ in range(50):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError as e:\n"
        "        print('errno', e.errno, 'after', made, flush=True)\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    made += 1\n"
        "else:\n"
        "    print('errno 0 after', made, flush=True)\n"
        "time.sleep(60)\n"
    )
    pid = boxes.spawn(cg, code, stdout=w)
    os.close(w)
    try:
        words = read_line(r).split()
    finally:
        os.close(r)
    assert int(words[1]) == errno.EAGAIN, words
    assert int(words[3]) == 7  # the child itself is the 8th task
    assert len(procs(cg)) == 8
    cg.kill_all()
    status, _ = boxes.wait(pid)
    assert os.WTERMSIG(status) == signal.SIGKILL


SPAWN_STUBBORN = """\
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
kids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        os.setsid()  # out of our process group, as an escaping grandchild would be
        time.sleep(120)
        os._exit(0)
    kids.append(pid)
print(*kids, flush=True)
time.sleep(120)
"""


def check_kill_all(boxes: Boxes) -> None:
    cg = boxes.create()
    r, w = os.pipe()
    pid = boxes.spawn(cg, SPAWN_STUBBORN, stdout=w)
    os.close(w)
    try:
        grandchildren = [int(p) for p in read_line(r).split()]
    finally:
        os.close(r)
    watch = [os.pidfd_open(p) for p in grandchildren]
    try:
        os.kill(pid, signal.SIGTERM)  # ignored
        assert sorted(procs(cg)) == sorted([pid, *grandchildren])
        cg.kill_all()
        assert procs(cg) == []
        status, _ = boxes.wait(pid, timeout_s=5.0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        # A pidfd turns readable when its process exits (pidfd_open(2)); no pid-reuse race.
        ready, _, _ = select.select(watch, [], [], 5.0)
        assert len(ready) == len(watch)
    finally:
        for fd in watch:
            os.close(fd)


def check_fork_bomb_kill(boxes: Boxes) -> None:
    cg = boxes.create(pids=64)
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    pid = boxes.spawn(cg, bomb)
    # Until the bomb is under way: 0.3 s natively, longer under emulation (the v2 lab's TCG).
    deadline = time.monotonic() + 10.0
    while len(procs(cg)) <= 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(procs(cg)) > 10
    cg.kill_all()
    assert procs(cg) == []
    boxes.wait(pid, timeout_s=5.0)
    cg.destroy()
    assert not any(os.path.exists(p) for p in cg.paths)


def check_set_limits_up_and_down(boxes: Boxes) -> None:
    """Placeholder limits, then a box's own: growing and shrinking memory both pass the
    kernel's checks (v1 refuses memsw.limit < limit with EINVAL), and the new limit holds."""
    cg = boxes.create(memory_bytes=64 * MIB, pids=1)
    cg.set_limits(CgroupLimits(256 * MIB, 64))
    cg.set_limits(CgroupLimits(32 * MIB, 64))
    status, _ = boxes.wait(boxes.spawn(cg, "b = bytearray(100 << 20)\n"))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert cg.oom_killed()


def check_destroy_removes_everything(boxes: Boxes) -> None:
    idle = boxes.create()
    idle.destroy()
    busy = boxes.create()
    pid = boxes.spawn(busy, "import time\ntime.sleep(60)\n")
    deadline = time.monotonic() + 5.0
    while not procs(busy) and time.monotonic() < deadline:
        time.sleep(0.005)
    busy.destroy()  # a task inside: EBUSY, kill_all, rmdir
    boxes.wait(pid, timeout_s=5.0)
    for cg in (idle, busy):
        assert not any(os.path.exists(p) for p in cg.paths), cg.paths
    busy.destroy()  # idempotent
