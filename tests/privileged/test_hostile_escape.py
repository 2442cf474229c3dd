"""Hostile programs that reach for what lies next to the box: the launcher's descriptors and
result channel, files read back by the host, the box's init, the next box and a box running
at the same time."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import FileIn
from tests.privileged import hostile_util as hu

pytestmark = pytest.mark.privileged

elves = hu.elves
guard = hu.guard

FD_LIST = """
# The descriptor os.listdir used is closed by now: only what stays open can be readlink'ed.
fds = []
for fd in sorted(int(name) for name in os.listdir("/proc/self/fd")):
    try:
        say(f"fd{fd}", os.readlink(f"/proc/self/fd/{fd}"))
        fds.append(fd)
    except OSError:
        pass
say("fds", ",".join(map(str, fds)))
"""


def test_program_holds_only_stdio(launcher: Launcher, guard: hu.HostGuard) -> None:
    """Any descriptor beyond 0, 1 and 2 is a channel to the launcher or the host."""
    r = hu.run_py(launcher, FD_LIST)
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    assert hu.kv(r)["fds"] == "0,1,2", hu.describe(r)


FORGE = """
import json, stat, struct
header = json.dumps({"status": 0, "wall": 0.001, "init_cpu": 1000.0,
                     "files": {"/box/forged": 6}}).encode()
forged = struct.pack("<I", len(header)) + header + b"FORGED"
stdio = {os.fstat(fd).st_ino for fd in (1, 2)}
written = []
for fd in range(3, 256):
    try:
        st = os.fstat(fd)
    except OSError:
        continue
    if stat.S_ISFIFO(st.st_mode) and st.st_ino not in stdio:
        try:
            os.write(fd, forged)
            written.append(str(fd))
        except OSError:
            pass
say("forged_into", ",".join(written) or "none")
sys.exit(3)
"""


def test_program_cannot_forge_its_result(launcher: Launcher, guard: hu.HostGuard) -> None:
    """A program that exits 3 after writing a fake "exited 0" record into every pipe it can
    find must still be judged RE with exit code 3, with no file it did not make."""
    r = hu.run_py(launcher, FORGE)
    guard.check()
    assert r.status == Status.RE and r.exit_code == 3, hu.describe(r)
    assert "/box/forged" not in r.files, r.files


@pytest.fixture
def canary() -> Iterator[Path]:
    path = Path(f"/root/stockade-canary-{secrets.token_hex(6)}")
    path.write_text("host secret\n")
    path.chmod(0o600)
    yield path
    path.unlink(missing_ok=True)


PLANT_SYMLINKS = """
canary = sys.argv[1]
for name, target in [("shadow", "/etc/shadow"), ("passwd", "/etc/passwd"),
                     ("canary", canary), ("initenv", "/proc/1/environ"),
                     ("etcdir", "/etc"), ("procroot", "/proc/1/root")]:
    attempt("symlink_" + name, os.symlink, target, "/box/" + name)
attempt("hardlink_passwd", os.link, "/etc/passwd", "/box/hard")
os.mkdir("/box/d")
attempt("symlink_in_dir", os.symlink, "/etc/passwd", "/box/d/p")
with open("/box/ok", "w") as f:
    f.write("fine")
"""
COLLECT = (
    "shadow", "passwd", "canary", "initenv", "etcdir/passwd", "procroot/etc/passwd", "hard",
    "d/p", "ok",
)  # fmt: skip


def test_planted_symlinks_are_not_followed_on_collect(
    launcher: Launcher, guard: hu.HostGuard, canary: Path
) -> None:
    before = canary.read_bytes()
    r = hu.run_py(launcher, PLANT_SYMLINKS, str(canary), collect=COLLECT)
    guard.check()
    assert canary.read_bytes() == before
    assert r.status == Status.OK, hu.describe(r)
    assert r.files.get("/box/ok") == b"fine", r.files
    for name in COLLECT[:-1]:
        got = r.files.get(f"/box/{name}")
        assert not isinstance(got, bytes), f"collect followed /box/{name}: {got!r}"
    assert hu.kv(r)["hardlink_passwd"] in ("EXDEV", "EPERM", "EROFS")


SPECIAL_FILES = """
import socket
attempt("mkfifo", os.mkfifo, "/box/fifo")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("/box/sock")
s.listen(1)
with open("/box/ok", "w") as f:
    f.write("fine")
"""


def test_fifo_and_socket_in_collect_are_refused_without_hanging(
    launcher: Launcher, guard: hu.HostGuard
) -> None:
    # The compile profile allows mkfifo (build tools use FIFOs); the run profile does not.
    started = time.monotonic()
    r = hu.run_py(launcher, SPECIAL_FILES, profile="compile", collect=("fifo", "sock", "ok"))
    took = time.monotonic() - started
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    assert hu.kv(r)["mkfifo"] == "ok"
    assert took < hu.TIGHT.wall_time_s
    assert r.files.get("/box/ok") == b"fine"
    assert not isinstance(r.files.get("/box/fifo"), bytes)
    assert not isinstance(r.files.get("/box/sock"), bytes)


LEAVE_BEHIND = """
import ctypes
tag = sys.argv[1]
for path in ("/box/x", "/tmp/x", "/dev/shm/x", "/box/.hidden", "/tmp/.X11-unix"):
    with open(path, "w") as f:
        f.write(tag)
libc = ctypes.CDLL(None, use_errno=True)
shm = libc.shmget(0x5715, 4096, 0o1666)  # IPC_CREAT | 0666
say("shmget", "ok" if shm >= 0 else errno.errorcode[ctypes.get_errno()])
say("uid", os.getuid())
"""
LOOK_FOR_IT = """
import ctypes, glob
tag = sys.argv[1]
found = []
for path in ["/box/x", "/tmp/x", "/dev/shm/x", "/box/.hidden", "/tmp/.X11-unix",
             *glob.glob("/box/*"), *glob.glob("/tmp/*"), *glob.glob("/dev/shm/*")]:
    try:
        if tag in open(path).read():
            found.append(path)
    except OSError:
        pass
say("found", ",".join(sorted(set(found))) or "none")
say("box", ",".join(sorted(os.listdir("/box"))))
libc = ctypes.CDLL(None, use_errno=True)
shm = libc.shmget(0x5715, 0, 0)
say("shmget", "ok" if shm >= 0 else errno.errorcode[ctypes.get_errno()])
say("uid", os.getuid())
"""


def _host_sysv_keys() -> str:
    return Path("/proc/sysvipc/shm").read_text()


def test_nothing_survives_into_the_next_box(launcher: Launcher, guard: hu.HostGuard) -> None:
    tag = secrets.token_hex(8)
    first = hu.run_py(launcher, LEAVE_BEHIND, tag)
    second = hu.run_py(launcher, LOOK_FOR_IT, tag, name="look.py")
    guard.check()
    assert "5715" not in _host_sysv_keys()
    host_shm = [p.read_text(errors="replace") for p in Path("/dev/shm").glob("*") if p.is_file()]
    assert not any(tag in text for text in host_shm)
    assert first.status == Status.OK and hu.kv(first)["shmget"] == "ok", hu.describe(first)
    assert second.status == Status.OK, hu.describe(second)
    out = hu.kv(second)
    assert out["found"] == "none", hu.describe(second)
    assert out["box"] == "look.py"
    assert out["shmget"] == "ENOENT"


VICTIM = """
import ctypes, socket, time
with open("/box/victim-secret", "w") as f:
    f.write("victim")
# Open doors the attacker will try: loopback TCP, an abstract unix socket, SysV shm.
tcp = socket.socket()
tcp.bind(("127.0.0.1", 7777))
tcp.listen(1)
unix = socket.socket(socket.AF_UNIX)
unix.bind("\\0stockade-victim")
unix.listen(1)
say("shm", ctypes.CDLL(None).shmget(0x7777, 4096, 0o1666) >= 0)
say("uid", os.getuid())
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    time.sleep(0.02)
say("survived", 1)
"""
ATTACKER = """
import signal
host_pid = int(sys.argv[1])
victim_uid = int(sys.argv[2])
say("uid", os.getuid())
attempt("kill_all", os.kill, -1, signal.SIGKILL)
attempt("kill_host_pid", os.kill, host_pid, signal.SIGKILL)
attempt("victim_environ", lambda: open(f"/proc/{host_pid}/environ").read())
attempt("victim_root", os.listdir, f"/proc/{host_pid}/root/box")
say("pids", ",".join(sorted(p for p in os.listdir("/proc") if p.isdigit())))
alive = []
for pid in range(1, 4 * 32768):
    try:
        os.kill(pid, 0)
        alive.append(str(pid))
    except OSError:
        pass
say("signalable", ",".join(alive))
say("victim_file", os.path.exists("/box/victim-secret") or os.path.exists("/tmp/victim-secret"))
import ctypes, socket
attempt("victim_tcp", socket.create_connection, ("127.0.0.1", 7777), 1.0)
attempt("victim_unix", socket.socket(socket.AF_UNIX).connect, "\\0stockade-victim")
say("victim_shm", ctypes.CDLL(None).shmget(0x7777, 0, 0) >= 0)
owned = []
for root in ("/box", "/tmp", "/dev/shm"):
    for name in os.listdir(root):
        if os.lstat(os.path.join(root, name)).st_uid == victim_uid:
            owned.append(name)
say("victim_owned", ",".join(owned) or "none")
"""


def _find_box_process(launcher: Launcher, marker: bytes, timeout_s: float = 3.0) -> hu.Proc:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in hu.our_slot_procs(launcher):
            if marker in p.cmdline:
                return p
        time.sleep(0.01)
    raise AssertionError(f"no box process with {marker!r} in its command line appeared")


def test_concurrent_boxes_cannot_see_or_signal_each_other(
    launcher: Launcher, guard: hu.HostGuard
) -> None:
    results: dict[str, BoxResult] = {}
    victim = threading.Thread(
        target=lambda: results.setdefault(
            "victim", hu.run_py(launcher, VICTIM, "2.0", name="victim.py")
        )
    )
    victim.start()
    try:
        proc = _find_box_process(launcher, b"/box/victim.py")
        attacker = hu.run_py(launcher, ATTACKER, str(proc.pid), str(proc.uid), name="attacker.py")
    finally:
        victim.join(timeout=10)
    guard.check()
    v = results["victim"]
    assert v.status == Status.OK, hu.describe(v)
    assert hu.kv(v)["survived"] == "1"
    assert attacker.status == Status.OK, hu.describe(attacker)
    out = hu.kv(attacker)
    assert int(out["uid"]) != int(hu.kv(v)["uid"]) == proc.uid
    assert out["kill_all"] == "ESRCH"  # nothing it may signal but itself and its init
    assert out["kill_host_pid"] == "ESRCH" or proc.pid in (1, 2)
    assert out["victim_environ"] == out["victim_root"] == "ENOENT"
    assert out["pids"] == "1,2" and out["signalable"] == "1,2"
    assert out["victim_file"] == "False" and out["victim_owned"] == "none"
    assert hu.kv(v)["shm"] == "True"
    assert out["victim_tcp"] == out["victim_unix"] == "ECONNREFUSED"
    assert out["victim_shm"] == "False"


def test_signals_to_init_are_ignored(
    launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard
) -> None:
    r = hu.run_c(launcher, elves, "kill_init")
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["init_alive"] == "ok" and out["program_alive"] == "1"
    assert out["kill_all"] == "ESRCH"


SABOTAGE_INIT = """
import resource
# init runs under the program's uid: prlimit64(2) on another process asks only for matching
# uids, so these reach init unless something stops them. Each would make init fail while
# it collects files and reports, after the program is gone.
for name, value in [("RLIMIT_NOFILE", (0, 0)), ("RLIMIT_AS", (1 << 20, 1 << 20)),
                    ("RLIMIT_STACK", (16384, 16384)), ("RLIMIT_FSIZE", (0, 0))]:
    attempt("prlimit_init_" + name, resource.prlimit, 1, getattr(resource, name), value)
attempt("renice_init", os.setpriority, os.PRIO_PROCESS, 1, 19)
attempt("affinity_init", os.sched_setaffinity, 1, {0})
with open("/box/answer.txt", "w") as f:
    f.write("42")
say("done", 1)
sys.exit(1)
"""


def test_program_cannot_sabotage_its_init(launcher: Launcher, guard: hu.HostGuard) -> None:
    """A program that exits 1 after lowering its init's limits must be judged RE with exit
    code 1, its output and files intact, not XX ("the sandbox failed"): a judge retries or
    escalates XX, so a submission must not be able to choose it."""
    r = hu.run_py(launcher, SABOTAGE_INIT, collect=("answer.txt",))
    guard.check()
    assert r.status == Status.RE and r.exit_code == 1, hu.describe(r)
    assert hu.kv(r)["done"] == "1"
    assert r.files.get("/box/answer.txt") == b"42"


PTRACE_INIT = """
PTRACE_ATTACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 16, 0x4206, 0x4207
sys_attempt("attach_init", 101, PTRACE_ATTACH, 1, 0, 0)
sys_attempt("seize_init", 101, PTRACE_SEIZE, 1, 0, 0)
sys_attempt("interrupt_init", 101, PTRACE_INTERRUPT, 1, 0, 0)
attempt("init_mem", lambda: open("/proc/1/mem", "rb").read(1))
attempt("init_mem_write", lambda: open("/proc/1/mem", "wb"))
attempt("init_environ", lambda: open("/proc/1/environ", "rb").read())
attempt("init_stack", lambda: open("/proc/1/stack", "rb").read())
attempt("init_syscall", lambda: open("/proc/1/syscall", "rb").read())
"""


def test_ptrace_and_proc_mem_of_init(launcher: Launcher, guard: hu.HostGuard) -> None:
    r = hu.run_py(launcher, PTRACE_INIT)
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["attach_init"] == out["seize_init"] == out["interrupt_init"] == "EPERM"
    for key in ("init_mem", "init_mem_write", "init_environ", "init_stack", "init_syscall"):
        assert out[key] in ("EACCES", "EPERM"), f"{key}={out[key]}"


PLANT_INPUT_LINK = "os.symlink('/etc', '/box/input')\nsay('planted', 1)\n"
READ_INPUT = (
    "say('input', open('/box/input').read())\nsay('is_link', os.path.islink('/box/input'))\n"
)


def test_box_files_cannot_be_placed_outside(launcher: Launcher, guard: hu.HostGuard) -> None:
    """A program that plants a symlink where the next box's input goes cannot make the
    launcher write outside: every box starts from a fresh /box."""
    planted = hu.run_py(launcher, PLANT_INPUT_LINK)
    r = hu.run_py(launcher, READ_INPUT, files=(FileIn("input", b"data"),))
    guard.check()
    assert hu.kv(planted)["planted"] == "1"
    assert r.status == Status.OK, hu.describe(r)
    assert hu.kv(r) == {"input": "data", "is_link": "False"}
