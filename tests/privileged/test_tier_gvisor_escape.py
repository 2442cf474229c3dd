"""test_hostile_escape.py's and test_hostile_network.py's programs on the gVisor tier. The
sandbox has no init of ours: the program (or the group's sh) is pid 1, and the supervisor
is the Sentry outside it. A box reaches its own processes only; other boxes, the launcher
and the host are other kernels' or the host's objects. Outcomes asserted are gVisor's."""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import threading
import time
from pathlib import Path

import pytest

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec, FileIn
from tests.privileged import hostile_util as hu
from tests.privileged import test_hostile_escape as es
from tests.privileged import test_hostile_network as net
from tests.privileged.test_hostile_network import host_listeners
from tests.privileged.test_tier_gvisor import PID, gvisor_usable, nothing_left
from tests.privileged.test_tier_gvisor_containment import (
    Group,
    Probe,
    _host_unchanged,
    host_canaries,
    run_group,
)

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
elves = hu.elves
__all__ = ["_host_unchanged", "gvisor_usable", "host_canaries", "host_listeners", "nothing_left"]
G = {"tier": "gvisor"}

# With capabilities in a user namespace of its own, the program makes a TUN interface: this
# gVisor checks CAP_NET_ADMIN against the task's namespace, not the network namespace's
# owner (Linux refuses it). The interface is in the Sentry's netstack, which has no link to
# the host (--network=none): the host's interfaces are checked unchanged.
TUN_IN_USERNS = """
import fcntl, struct
fd = os.open("/dev/net/tun", os.O_RDWR)
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
ifreq = struct.pack("16sH", b"stockadetun0", IFF_TUN | IFF_NO_PI)
attempt("tun_setiff", fcntl.ioctl, fd, TUNSETIFF, ifreq)
sys_attempt("unshare_user_ns", 272, 0x10000000 | 0x20000)
sys_attempt("mount_tmpfs", 165, b"none", b"/tmp", b"tmpfs", 0, 0)
attempt("tun_setiff_userns", fcntl.ioctl, fd, TUNSETIFF, ifreq)
lines = open("/proc/net/dev").readlines()[2:]
say("ifaces", ",".join(sorted(l.split(":")[0].strip() for l in lines)))
"""


# ATTACKER tries kill(pid, 0) on every pid up to 4 * 32768. Each is a ptrace stop in the
# Sentry, 6.6 s of CPU for the whole scan, past the wall limit on a busy host. A box's Sentry
# numbers its few tasks from 1, so pids up to 32768 cover every one it could hold.
ATTACKER = es.ATTACKER.replace("range(1, 4 * 32768)", "range(1, 32768 + 1)")
assert ATTACKER != es.ATTACKER


def _host_ifaces() -> list[str]:
    return sorted(os.listdir("/sys/class/net"))


def test_stdio_ptrace_and_network_probes(
    launcher: Launcher, host_listeners: dict[str, socket.socket]
) -> None:
    """FD_LIST, PTRACE_INIT, NET_PROBE, HOST_PATH_SOCKET and the TUN probe in one box."""
    tcp_port = host_listeners["tcp"].getsockname()[1]
    udp_port = host_listeners["udp"].getsockname()[1]
    abstract = host_listeners["abstract"].getsockname()[1:].decode()
    ifaces = _host_ifaces()
    with net.host_path_listener("gvisor") as path:
        g = run_group(
            launcher,
            [
                Probe("fds", es.FD_LIST),
                Probe("ptrace", es.PTRACE_INIT),
                Probe("net", net.NET_PROBE, args=(str(tcp_port), str(udp_port), abstract)),
                Probe("host_path", net.HOST_PATH_SOCKET, args=(path,)),
                Probe("tun", TUN_IN_USERNS),
            ],
        )
    assert net._nothing_arrived(host_listeners) == []
    assert _host_ifaces() == ifaces
    _check_fds(g)
    _check_ptrace(g)
    _check_net(g)
    assert g["host_path"] == {"connect": "ENOENT", "docker": "ENOENT"}, g.describe("host_path")
    want = {"tun_setiff": "EPERM", "unshare_user_ns": "ok", "mount_tmpfs": "EPERM"}
    want |= {"tun_setiff_userns": "ok", "ifaces": "lo,stockadetun0"}
    assert g["tun"] == want, g.describe("tun")


def _check_fds(g: Group) -> None:
    # Only stdio, as in a container box (here the group's files, not pipes).
    out = g["fds"]
    assert out["fds"] == "0,1,2", g.describe("fds")
    assert (out["fd0"], out["fd1"], out["fd2"]) == ("/box/in/fds", "/box/out/fds", "/box/out/fds")


def _check_ptrace(g: Group) -> None:
    # pid 1 is the group's sh, the program's own: its environment is readable (same uid),
    # ptrace of it is refused (gVisor, like Yama, lets a task trace only its descendants),
    # and /proc/1/mem is refused. The Sentry has no /proc/<pid>/stack or syscall.
    want = {"attach_init": "EPERM", "seize_init": "EPERM", "interrupt_init": "ESRCH"}
    want |= {"init_mem": "EACCES", "init_mem_write": "EACCES", "init_environ": "ok"}
    want |= {"init_stack": "ENOENT", "init_syscall": "ENOENT"}
    assert g["ptrace"] == want, g.describe("ptrace")


def _check_net(g: Group) -> None:
    # The Sentry's netstack has a loopback of its own and no route out (--network=none).
    out = g["net"]
    assert out["tcp_loopback"] == out["udp_loopback"] == "ECONNREFUSED", g.describe("net")
    assert out["tcp_localhost6"] == "ECONNREFUSED", g.describe("net")
    assert out["abstract_stream"] == out["abstract_dgram"] == "ECONNREFUSED"
    # With no route, the Sentry's netstack answers EHOSTUNREACH (Linux: ENETUNREACH).
    for key in ("metadata", "private", "public"):
        assert out[key] == "EHOSTUNREACH", f"{key}={out[key]}"
    assert out["interfaces"] == "lo"
    assert out["proc_net_tcp_port"] == out["proc_net_unix_name"] == "False"


def test_program_cannot_forge_its_result(launcher: Launcher) -> None:
    """No pipe but stdio: the result comes from `runsc run`'s exit, outside the sandbox."""
    r = hu.run_py(launcher, es.FORGE, **G)
    assert r.status == Status.RE and r.exit_code == 3, hu.describe(r)
    assert hu.kv(r)["forged_into"] == "none" and "/box/forged" not in r.files


def test_planted_symlinks_are_not_followed_on_collect(launcher: Launcher) -> None:
    canary = Path(f"/root/stockade-gvisor-canary-{secrets.token_hex(6)}")
    canary.write_text("host secret\n")
    canary.chmod(0o600)
    try:
        r = hu.run_py(launcher, es.PLANT_SYMLINKS, str(canary), collect=es.COLLECT, **G)
        assert canary.read_bytes() == b"host secret\n"
    finally:
        canary.unlink()
    assert r.status == Status.OK, hu.describe(r)
    assert r.files.get("/box/ok") == b"fine", r.files
    for name in es.COLLECT[:-1]:
        assert not isinstance(r.files.get(f"/box/{name}"), bytes), f"collect followed {name}"
    out = hu.kv(r)
    # /etc and /box are one gofer mount to the Sentry, which refuses a hard link to a file
    # the box user does not own (EPERM; EXDEV in a container). Behind it, the host would
    # too: they are different host mounts (EXDEV), /etc a read-only one.
    assert out["hardlink_passwd"] == "EPERM", hu.describe(r)


def test_fifo_and_socket_in_collect_are_refused_without_hanging(launcher: Launcher) -> None:
    started = time.monotonic()
    r = hu.run_py(
        launcher, es.SPECIAL_FILES, profile="compile", collect=("fifo", "sock", "ok"), **G
    )
    assert time.monotonic() - started < hu.TIGHT.wall_time_s
    assert r.status == Status.OK and hu.kv(r)["mkfifo"] == "ok", hu.describe(r)
    assert r.files.get("/box/ok") == b"fine"
    assert set(r.files_refused) >= {"/box/fifo", "/box/sock"}, r.files_refused


def test_nothing_survives_into_the_next_box(launcher: Launcher) -> None:
    tag = secrets.token_hex(8)
    first = hu.run_py(launcher, es.LEAVE_BEHIND, tag, **G)
    second = hu.run_py(launcher, es.LOOK_FOR_IT, tag, name="look.py", **G)
    assert "5715" not in es._host_sysv_keys()
    assert first.status == Status.OK and hu.kv(first)["shmget"] == "ok", hu.describe(first)
    assert second.status == Status.OK, hu.describe(second)
    out = hu.kv(second)
    assert (out["found"], out["box"], out["shmget"]) == ("none", "look.py", "ENOENT")
    assert out["uid"] == hu.kv(first)["uid"]  # one uid for every gVisor box: see below


def _find_sentry(timeout_s: float = 5.0) -> int:
    """The host pid of this process's running Sentry (`runsc-sandbox`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"runsc-sandbox") and f"/gvisor/{PID}.".encode() in cmd:
                return int(name)
        time.sleep(0.02)
    raise AssertionError("no Sentry of this process appeared")


def _sentry_status_once_filtered(pid: int, timeout_s: float = 5.0) -> str:
    """/proc/<pid>/status of the Sentry once it has loaded its seccomp filter (it boots
    without one; the last status read is returned if it never does)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = Path(f"/proc/{pid}/status").read_text()
        if "\nSeccomp:\t2" in status or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


def test_concurrent_boxes_cannot_see_or_signal_each_other(launcher: Launcher) -> None:
    """Every gVisor box runs as the same uid: what keeps two apart is that each has its
    own Sentry (its own pids, netstack, IPC and file view), not the uid. The attacker
    gets the victim's Sentry's host pid; the Sentry runs under seccomp on the host."""
    results: dict[str, BoxResult] = {}
    slow = dataclasses.replace(hu.TIGHT, wall_time_s=15.0, cpu_time_s=10.0)

    def victim() -> None:
        results["victim"] = hu.run_py(
            launcher, es.VICTIM, "8.0", name="victim.py", limits=slow, **G
        )

    t = threading.Thread(target=victim)
    t.start()
    try:
        sentry = _find_sentry()
        status = _sentry_status_once_filtered(sentry)
        time.sleep(0.3)  # the victim opens its doors
        attacker = hu.run_py(
            launcher, ATTACKER, str(sentry), "0", name="attacker.py", limits=slow, **G
        )
    finally:
        t.join(timeout=20)
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Seccomp"].strip() == "2" and fields["NoNewPrivs"].strip() == "1", status
    v = results["victim"]
    assert v.status == Status.OK and hu.kv(v)["survived"] == "1", hu.describe(v)
    assert hu.kv(v)["shm"] == "True"
    assert attacker.status == Status.OK, hu.describe(attacker)
    out = hu.kv(attacker)
    assert out["uid"] == hu.kv(v)["uid"]
    # kill(-1) reaches only the attacker's own sandbox: its pid 1 is itself, ESRCH.
    assert out["kill_all"] == "ESRCH" and out["kill_host_pid"] == "ESRCH", hu.describe(attacker)
    assert out["victim_environ"] == out["victim_root"] == "ENOENT"
    assert out["pids"] == out["signalable"] == "1", hu.describe(attacker)
    assert out["victim_file"] == "False"
    assert out["victim_tcp"] == out["victim_unix"] == "ECONNREFUSED"
    assert out["victim_shm"] == "False"


def test_signals_to_init_end_only_the_box(launcher: Launcher, elves: dict[str, bytes]) -> None:
    """gVisor delivers SIGKILL from inside to the sandbox's pid 1, which Linux ignores for
    an init. pid 1 is the program's own sh, so the program killed itself: the box ends
    with the program's verdict (SIGKILL), never a sandbox failure, and nothing is left."""
    files = (FileIn("kill_init", elves["kill_init"], 0o755),)
    box = BoxSpec(argv=("/bin/sh", "-c", "/box/kill_init; echo rc=$?"), files=files, **G)
    r = launcher.run(box)
    assert (r.status, r.signal) == (Status.SG, 9), hu.describe(r)
    # kill_init goes on until the sandbox's teardown reaches it, so its output is cut at
    # any line; kill(-1) spares pid 1 and the caller (ESRCH), as in a container box.
    signals = ("sigkill", "sigstop", "sigint", "sigterm", "sigsegv")
    want = [f"kill_init_{s}=ok" for s in signals] + ["kill_all=ESRCH"]
    got = r.stdout.decode().splitlines()[: len(want)]
    assert got == want[: len(got)] and b"rc=" not in r.stdout, hu.describe(r)


def test_program_cannot_sabotage_its_init(launcher: Launcher) -> None:
    """pid 1 is the program itself: the limits it lowers are its own (prlimit of itself
    is allowed), and what fails is its own next open (RLIMIT_NOFILE 0): RE, exit 1, the
    program's verdict. gVisor makes the file before it finds no free descriptor."""
    r = hu.run_py(launcher, es.SABOTAGE_INIT, collect=("answer.txt",), **G)
    assert r.status == Status.RE and r.exit_code == 1, hu.describe(r)
    out = hu.kv(r)
    assert all(out[k] == "ok" for k in out), hu.describe(r)
    assert "done" not in out and b"Too many open files" in r.stderr
    assert r.files == {"/box/answer.txt": b""}


def test_box_files_cannot_be_placed_outside(launcher: Launcher) -> None:
    planted = hu.run_py(launcher, es.PLANT_INPUT_LINK, **G)
    r = hu.run_py(launcher, es.READ_INPUT, files=(FileIn("input", b"data"),), **G)
    assert hu.kv(planted)["planted"] == "1"
    assert r.status == Status.OK, hu.describe(r)
    assert hu.kv(r) == {"input": "data", "is_link": "False"}
