"""The container tier's hostile programs on the microVM tier. The guest agent loads the same
seccomp filter before execve, so the syscall classes meet the same refusals; the limits are
the guest's cgroup2 and rlimits. Programs are grouped into few boxes (each boots a VM), the
outcome of every key is checked, and the host must not change."""

from __future__ import annotations

import dataclasses

import pytest

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import MIB, BoxSpec, FileIn
from tests.privileged import hostile_util as hu
from tests.privileged.test_hostile_syscalls import (
    PACKET_SOCKETS,
    PRIVILEGED_PY,
    SECCOMP_CLASSES,
    _host_files,
)
from tests.privileged.test_tier_microvm import launcher_backend, nothing_left, usable

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
elves = hu.elves
__all__ = ["nothing_left"]  # the leftover check, autouse
# The hostile programs are built on the host (Debian 12, dynamic glibc); the debian image is
# the same release, so they run there unchanged.
C_IMAGE = "debian"
LIM = dataclasses.replace(hu.TIGHT, cpu_time_s=5.0, wall_time_s=20.0)

E = "EPERM"
# Where the microVM's answer is not the container tier's EPERM, and why.
MICROVM_OUTCOMES: dict[str, str] = {
    # Refused by the same filter with the same errno as the container tier (ENOSYS there).
    **dict.fromkeys(
        ("clone3_newuser", "clone3_newpid_net", "clone3_into_cgroup", "clone3_plain"), "ENOSYS"
    ),
}


@pytest.fixture(scope="module", autouse=True)
def microvm_usable(launcher: Launcher) -> None:
    """The boxes run through the session launcher; its backend's pool VMs are not leftovers."""
    usable(launcher.config)
    launcher_backend(launcher)


def run_c_box(launcher: Launcher, elves: dict[str, bytes], names: list[str]) -> BoxResult:
    """Several programs in one VM, one after the other, each exit status echoed."""
    script = "; ".join(f"/box/{n}; echo {n}_rc=$?" for n in names)
    files = tuple(FileIn(n, elves[n], 0o755) for n in names)
    argv = ("/bin/sh", "-c", script)
    box = BoxSpec(argv=argv, files=files, limits=LIM, tier="microvm", rootfs=C_IMAGE)
    return launcher.run(box)


def test_seccomp_classes_and_foreign_abis(launcher: Launcher, elves: dict[str, bytes]) -> None:
    """Every program of the container tier's seccomp classes and both foreign ABIs, in one
    VM; each key against the expected refusal, the host unchanged after."""
    names = [p.values[0] for p in SECCOMP_CLASSES]
    keys = [k for p in SECCOMP_CLASSES for k in p.values[1]]
    before = _host_files()
    r = run_c_box(launcher, elves, [*names, "int80", "x32"])
    assert r.status is Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert all(out.get(f"{n}_rc") == "0" for n in names), hu.describe(r)
    wrong = [
        f"{k}={out.get(k, '<missing>')} (expected {MICROVM_OUTCOMES.get(k, E)})"
        for k in keys
        if out.get(k) != MICROVM_OUTCOMES.get(k, E)
    ]
    assert not wrong, wrong
    # The foreign ABIs are killed by the filter (SIGSYS = 31, so the shell says 128 + 31).
    assert out.get("int80_rc") == out.get("x32_rc") == "159", hu.describe(r)
    assert "survived" not in out
    assert _host_files() == before


def test_privileged_calls_and_socket_families(launcher: Launcher) -> None:
    code = PRIVILEGED_PY + PACKET_SOCKETS
    r = hu.run_py(launcher, code, limits=LIM, tier="microvm", rootfs="python3")
    assert r.status is Status.OK, hu.describe(r)
    out = hu.kv(r)
    keys = [
        "unshare_newuser", "unshare_newuser_ns", "pivot_root", "pivot_root_box", "chroot",
        "mknod_mem", "mknod_vda", "mkfifo", "sethostname", "setuid0", "setresuid0", "setgid0",
        "setgroups0", "af_packet_raw", "af_packet_dgram", "netlink_route", "netlink_dgram",
        "af_alg", "af_vsock", "af_key", "sctp",
    ]  # fmt: skip
    assert not hu.all_denied(out, keys, (E,)), hu.describe(r)
    assert out["mem_exists"] == "False"
    uid, euid = (int(x) for x in out["uid"].split(","))
    assert uid == euid != 0


def test_fork_bomb(launcher: Launcher, elves: dict[str, bytes]) -> None:
    lim = dataclasses.replace(LIM, cpu_time_s=1.0, pids=16)
    r = hu.run_c(launcher, elves, "forkbomb", limits=lim, tier="microvm", rootfs=C_IMAGE)
    assert r.status is Status.TO, hu.describe(r)
    assert hu.kv(r)["bomb"] == "1"


def test_memory_bomb(launcher: Launcher, elves: dict[str, bytes]) -> None:
    lim = dataclasses.replace(LIM, memory_bytes=64 * MIB)
    r = hu.run_c(launcher, elves, "membomb", limits=lim, tier="microvm", rootfs=C_IMAGE)
    assert r.status is Status.MLE, hu.describe(r)
    assert 0.9 * lim.memory_bytes <= r.memory <= 1.05 * lim.memory_bytes, hu.describe(r)


def test_stdout_flood(launcher: Launcher, elves: dict[str, bytes]) -> None:
    lim = dataclasses.replace(LIM, output_bytes=64 * 1024)
    r = hu.run_c(launcher, elves, "flood", limits=lim, tier="microvm", rootfs=C_IMAGE)
    assert r.status is Status.OLE, hu.describe(r)
    assert len(r.stdout) + len(r.stderr) <= lim.output_bytes
