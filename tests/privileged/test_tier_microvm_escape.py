"""test_hostile_escape.py's programs on the microVM tier. pid 1 is the guest agent (root,
hidden from the box by hidepid=2); the program's result travels on the VM's serial channel,
which only the agent holds. Other boxes are other VMs: other kernels, reached by nothing the
guest has (no network device, no shared file system)."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from pathlib import Path

import pytest

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import FileIn
from tests.privileged import hostile_util as hu
from tests.privileged import test_hostile_escape as es
from tests.privileged.test_tier_gvisor_containment import _host_unchanged, host_canaries
from tests.privileged.test_tier_microvm import launcher_backend, nothing_left
from tests.privileged.tier_groups import (
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
# Python under TCG: a second of CPU to start is not rare on a busy 2-core host.
LIM = dataclasses.replace(hu.TIGHT, cpu_time_s=10.0, wall_time_s=20.0)
# LEAVE_BEHIND stops at /dev/shm/x (the agent's /dev has no shm): the same source without
# that path goes on to its SysV segment.
LEAVE_NO_SHM = es.LEAVE_BEHIND.replace('"/dev/shm/x", ', "")
assert LEAVE_NO_SHM != es.LEAVE_BEHIND
# ATTACKER tries every pid up to 4 * 32768 with kill(pid, 0); the guest's pid_max is 32768
# (one vCPU), and 131072 calls of Python under TCG would take most of a minute.
ATTACKER = es.ATTACKER.replace("range(1, 4 * 32768)", "range(1, 32768 + 1)")
assert ATTACKER != es.ATTACKER


def test_program_cannot_forge_its_result(launcher: Launcher) -> None:
    """stdin is a memfd, stdout and stderr the agent's pipes; the report pipe is closed on
    execve. No other pipe exists to write a forged record into."""
    r = run_py(launcher, es.FORGE, limits=LIM)
    assert r.status == Status.RE and r.exit_code == 3, hu.describe(r)
    assert hu.kv(r)["forged_into"] == "none" and "/box/forged" not in r.files


def test_planted_symlinks_fifo_and_socket_on_collect(launcher: Launcher) -> None:
    """PLANT_SYMLINKS and SPECIAL_FILES in one program (compile profile: mkfifo allowed).
    The agent collects through openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS), in the guest:
    a link that were followed could only reach the guest's files, and none is."""
    canary = Path(f"/root/stockade-microvm-canary-{secrets.token_hex(6)}")
    canary.write_text("host secret\n")
    canary.chmod(0o600)
    collect = (*es.COLLECT, "fifo", "sock")
    started = time.monotonic()
    try:
        code = es.PLANT_SYMLINKS + es.SPECIAL_FILES
        r = run_py(launcher, code, str(canary), profile="compile", collect=collect, limits=LIM)
        assert canary.read_bytes() == b"host secret\n"
    finally:
        canary.unlink()
    assert time.monotonic() - started < LIM.wall_time_s
    assert r.status == Status.OK, hu.describe(r)
    assert r.files == {"/box/ok": b"fine"}, r.files
    # Every other name is refused: links are not followed, the FIFO and the socket are
    # not regular files, and "hard" was never made.
    assert set(r.files_refused) == {f"/box/{n}" for n in collect if n != "ok"}, r.files_refused
    out = hu.kv(r)
    assert out["hardlink_passwd"] == "EPERM", hu.describe(r)
    assert out["mkfifo"] == "ok"


def test_nothing_survives_into_the_next_box(launcher: Launcher, elves: dict[str, bytes]) -> None:
    """Two VMs in turn: the first leaves files, a SysV segment and a planted /box/input
    link; the second, a fresh VM from the pool, finds none of them."""
    tag = secrets.token_hex(8)
    first = run_group(
        launcher,
        [
            Probe("leave", es.LEAVE_BEHIND, args=(tag,)),
            Probe("leave_no_shm", LEAVE_NO_SHM, args=(tag,)),
            Probe("plant", es.PLANT_INPUT_LINK),
        ],
        elves,
        limits=LIM,
    )
    second = run_py(
        launcher,
        es.LOOK_FOR_IT + es.READ_INPUT,
        tag,
        name="look.py",
        files=(FileIn("input", b"data"),),
        limits=LIM,
    )
    assert "5715" not in es._host_sysv_keys()
    assert first.rcs["leave"] == "1" and "/dev/shm/x" in first.describe("leave")
    assert first["leave_no_shm"] == {"shmget": "ok", "uid": "60000"}, first.describe("leave_no_shm")
    assert first["plant"] == {"planted": "1"}
    assert second.status == Status.OK, hu.describe(second)
    out = hu.kv(second)
    want = {"found": "none", "box": "input,look.py", "shmget": "ENOENT", "uid": "60000"}
    assert out == want | {"input": "data", "is_link": "False"}, hu.describe(second)


def test_concurrent_boxes_cannot_see_or_signal_each_other(launcher: Launcher) -> None:
    """Two VMs at once. Every microVM box runs as uid 60000 of its own guest kernel: what
    keeps two apart is the VM, not the uid. The attacker gets the host pid of the victim's
    QEMU, which in its guest names nothing of the victim's."""
    backend = launcher_backend(launcher)
    results: dict[str, BoxResult] = {}
    slow = dataclasses.replace(hu.TIGHT, wall_time_s=40.0, cpu_time_s=30.0)
    before = set(backend.live())

    def victim() -> None:
        results["victim"] = run_py(launcher, es.VICTIM, "12.0", name="victim.py", limits=slow)

    t = threading.Thread(target=victim)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while not set(backend.live()) - before and not before and time.monotonic() < deadline:
            time.sleep(0.05)
        qemu = min(backend.live())  # the victim took the oldest: the pool's ready VM
        time.sleep(2.0)  # the victim opens its doors
        attacker = run_py(launcher, ATTACKER, str(qemu), "60000", name="attacker.py", limits=slow)
        overlapped = t.is_alive()
    finally:
        t.join(timeout=60)
    v = results["victim"]
    assert v.status == Status.OK and hu.kv(v)["survived"] == "1", hu.describe(v)
    assert hu.kv(v)["shm"] == "True"
    assert overlapped, "the victim's VM ended before the attack did"
    # ATTACKER ends at its listing of /dev/shm (the agent's /dev has none): RE, after every
    # other probe has printed.
    assert (attacker.status, attacker.exit_code) == (Status.RE, 1), hu.describe(attacker)
    assert b"/dev/shm" in attacker.stderr and b"FileNotFoundError" in attacker.stderr
    out = hu.kv(attacker)
    assert out["uid"] == hu.kv(v)["uid"] == "60000"
    # kill(-1): 0 with nothing signalled (see test_signals_to_init_are_refused); the QEMU
    # pid names no process of the guest's; the only pid it may signal is its own.
    assert out["kill_all"] == "ok" and out["kill_host_pid"] == "ESRCH", hu.describe(attacker)
    assert out["pids"] == out["signalable"] and "," not in out["pids"], hu.describe(attacker)
    assert out["victim_environ"] == out["victim_root"] == "ENOENT"
    assert out["victim_file"] == "False"
    assert out["victim_tcp"] == "ENETUNREACH" and out["victim_unix"] == "ECONNREFUSED"
    assert out["victim_shm"] == "False" and "victim_owned" not in out


def test_signals_to_init_are_refused(launcher: Launcher, elves: dict[str, bytes]) -> None:
    """The agent is root: every signal from uid 60000 is EPERM (a container box's init
    takes them and ignores them); kill(-1) finds nothing of the uid but the caller."""
    r = run_c(launcher, elves, "kill_init", limits=LIM)
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    signals = ("sigkill", "sigstop", "sigint", "sigterm", "sigsegv")
    # kill(-1) returns 0 though it signals nothing: no pid namespace, so the guest's
    # kernel threads and the agent are candidates, each refused with EPERM, and Linux
    # reports EPERM from kill(-1) as success (kill(2)); ESRCH only when there is none.
    want = {f"kill_init_{s}": "EPERM" for s in signals} | {"kill_all": "ok"}
    assert out == want | {"init_alive": "EPERM", "program_alive": "1"}, hu.describe(r)


def test_program_cannot_sabotage_its_init(launcher: Launcher) -> None:
    """The agent is root and the program is not: prlimit, renice and affinity of pid 1 are
    EPERM (a container box's init is refused too); the verdict is the program's."""
    r = run_py(launcher, es.SABOTAGE_INIT, collect=("answer.txt",), limits=LIM)
    assert r.status == Status.RE and r.exit_code == 1, hu.describe(r)
    out = hu.kv(r)
    assert out.pop("done") == "1" and set(out.values()) == {"EPERM"}, hu.describe(r)
    assert len(out) == 6 and r.files.get("/box/answer.txt") == b"42"
