"""stockade doctor's interpreters, with host readings given as data (no root, no probes)."""

from __future__ import annotations

import json

import pytest

from sandbox.cgroups.delegation import Placement
from sandbox.cgroups.manager import parse_mountinfo
from sandbox.cli.doctor import format_text
from sandbox.doctor import checks as doctor
from sandbox.doctor.checks import Finding, Level, ProbeOutcome
from sandbox.doctor.kvm import KvmReadings, check_kvm, kernel_boot_outcome
from sandbox.errors import SandboxError
from service import doctor as service_doctor
from tests.unit.cgroup_fake import V1_MOUNTINFO

# This machine's hybrid layout: v1 controllers, and a cgroup2 tree without memory or pids.
HYBRID = V1_MOUNTINFO
UNIFIED = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def levels(findings: list[Finding]) -> dict[str, Level]:
    return {f.check: f.level for f in findings}


def test_hybrid_v1_is_ok_and_cgroup2_is_named_as_unused() -> None:
    mounts = parse_mountinfo(HYBRID)
    found = doctor.check_cgroups(mounts, {"/sys/fs/cgroup/unified": frozenset({"hugetlb"})}, True)
    assert levels(found) == {"cgroups": Level.OK, "cgroup2": Level.OK}
    assert "v1: memory, cpu, cpuacct, pids, freezer" in found[0].detail
    assert "lacks memory, pids" in found[1].detail


def test_v1_without_freezer_warns_and_without_pids_fails() -> None:
    no_freezer = parse_mountinfo(HYBRID.replace("rw,freezer", "rw,blkio"))
    found = doctor.check_cgroups(no_freezer, {}, True)
    assert found[0].level is Level.WARN and "missing freezer" in found[0].detail
    no_pids = parse_mountinfo(HYBRID.replace("rw,pids", "rw,blkio"))
    found = doctor.check_cgroups(no_pids, {}, True)
    assert found[0].level is Level.FAIL and "pids" in found[0].detail and found[0].fix


def test_v1_without_memsw_warns() -> None:
    found = doctor.check_cgroups(parse_mountinfo(HYBRID), {}, memsw=False)
    assert levels(found)["cgroup swap accounting"] is Level.WARN


def test_unified_v2_is_chosen() -> None:
    ctls = {"/sys/fs/cgroup": frozenset({"memory", "pids", "cpu"})}
    found = doctor.check_cgroups(parse_mountinfo(UNIFIED), ctls, memsw=False)
    assert found[0] == Finding("cgroups", Level.OK, "v2 at /sys/fs/cgroup")
    assert "cgroup swap accounting" not in levels(found)


@pytest.mark.parametrize(
    ("version", "read_only", "control", "writable", "level"),
    [
        (1, False, frozenset(), False, Level.OK),
        (2, True, frozenset({"memory", "pids"}), True, Level.FAIL),
        (2, False, frozenset({"memory", "pids"}), False, Level.OK),
        (2, False, frozenset({"memory"}), True, Level.OK),
        (2, False, frozenset({"memory"}), False, Level.FAIL),
    ],
)
def test_delegation(
    version: int, read_only: bool, control: frozenset[str], writable: bool, level: Level
) -> None:
    f = doctor.check_delegation(version, "/sys/fs/cgroup", read_only, control, writable)
    assert f.level is level
    assert bool(f.fix) == (level is Level.FAIL)


def test_placement_says_where_boxes_go_or_the_fix() -> None:
    unit = "/system.slice/stockade-worker.service"
    f = doctor.check_placement(2, "/sys/fs/cgroup", Placement(unit, unit + "/supervisor", "w"))
    assert f.level is Level.OK and f.detail.startswith(f"/sys/fs/cgroup{unit}/stockade/")
    assert doctor.check_placement(2, "/sys/fs/cgroup", Placement("")).detail.startswith(
        "/sys/fs/cgroup/stockade/"
    )
    refused = SandboxError("cgroup", "placement", detail="session-1.scope is not delegated")
    f = doctor.check_placement(2, "/sys/fs/cgroup", refused)
    assert f.level is Level.FAIL and "systemd-run --scope -p Delegate=yes" in f.fix
    f = doctor.check_placement(2, "/sys/fs/cgroup", refused, can_scope=True)
    assert f.level is Level.WARN and "re-runs itself in a transient scope" in f.detail
    assert doctor.check_placement(1, "", Placement("")).level is Level.OK


def test_root() -> None:
    assert doctor.check_root(0).level is Level.OK
    f = doctor.check_root(1000)
    assert f.level is Level.FAIL and "uid 1000" in f.detail and f.fix


def test_swap() -> None:
    header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    assert doctor.check_swap(header).level is Level.OK
    on = doctor.check_swap(header + "/swapfile file 1048572 0 -2\n")
    assert on.level is Level.WARN and "/swapfile" in on.detail and "swapoff" in on.fix


@pytest.mark.parametrize(
    ("control", "siblings", "level"),
    [
        ("on\n", [], Level.WARN),
        ("off\n", ["0-1"], Level.OK),
        ("forceoff", [], Level.OK),
        ("notsupported\n", [], Level.OK),
        (None, ["0", "1"], Level.OK),
        (None, ["0,2", "1,3"], Level.WARN),
    ],
)
def test_smt(control: str | None, siblings: list[str], level: Level) -> None:
    assert doctor.check_smt(control, siblings).level is level


def test_cpufreq() -> None:
    assert doctor.check_cpufreq({}).level is Level.OK
    assert doctor.check_cpufreq({"cpu0": "performance", "cpu1": "performance"}).level is Level.OK
    f = doctor.check_cpufreq({"cpu0": "performance", "cpu1": "powersave"})
    assert f.level is Level.WARN and "cpu1: powersave" in f.detail and "cpu0" not in f.detail


def test_probe_outcomes() -> None:
    assert doctor.check_probe("seccomp", ProbeOutcome(True, "loads")).level is Level.OK
    failed = doctor.check_probe("overlayfs", ProbeOutcome(False, "mount: ENODEV"))
    assert failed.level is Level.FAIL and "overlay" in failed.fix
    denied = doctor.check_probe("overlayfs", ProbeOutcome(False, "unshare(0x20000): EPERM"))
    assert denied.fix.startswith("run as root")
    hung = doctor.check_probe("user namespaces", ProbeOutcome(None, "no answer in 3 s"))
    assert hung.level is Level.FAIL and hung.detail == "no answer in 3 s"


def test_outcome_from_child() -> None:
    good, data = doctor.outcome_from_child(
        0, b'{"ok": true, "detail": "x", "api_version": 12}\n', b""
    )
    assert good == ProbeOutcome(True, "x") and data["api_version"] == 12
    killed, data = doctor.outcome_from_child(-31, b"", b"")
    assert killed.ok is None and "signal 31" in killed.detail and data == {}
    crashed, _ = doctor.outcome_from_child(1, b"not json", b"Traceback\nImportError: pyseccomp\n")
    assert (
        crashed.ok is None and "exited with 1" in crashed.detail and "pyseccomp" in crashed.detail
    )


TOY_OK = ProbeOutcome(True, "ran")


@pytest.mark.parametrize(
    ("readings", "level", "says"),
    [
        (KvmReadings(device=False), Level.WARN, "no /dev/kvm"),
        (KvmReadings(device=True, open_error="Permission denied"), Level.WARN, "cannot be opened"),
        # PVM answers the API version and runs a toy guest: still not usable.
        (
            KvmReadings(True, "", 12, frozenset({"kvm", "kvm_pvm"}), TOY_OK),
            Level.WARN,
            "PVM-backed",
        ),
        (
            KvmReadings(
                True, "", 12, frozenset({"kvm", "kvm_pvm"}), TOY_OK, ProbeOutcome(False, "hung")
            ),
            Level.WARN,
            "does not boot (/dev/kvm is PVM-backed): hung",
        ),
        (
            KvmReadings(
                True, "", 12, frozenset({"kvm", "kvm_intel"}), ProbeOutcome(False, "exit 8")
            ),
            Level.WARN,
            "toy guest failed",
        ),
        (
            KvmReadings(
                True, "", 12, frozenset({"kvm", "kvm_intel"}), TOY_OK, ProbeOutcome(True, "0.3 s")
            ),
            Level.OK,
            "a Linux kernel boots",
        ),
        # The API version and a toy guest are not proof: without a kernel to boot, say so.
        (
            KvmReadings(True, "", 12, frozenset({"kvm", "kvm_intel"}), TOY_OK),
            Level.WARN,
            "does not prove",
        ),
    ],
)
def test_kvm(readings: KvmReadings, level: Level, says: str) -> None:
    f = check_kvm(readings)
    assert f.level is level and says in f.detail, f
    assert bool(f.fix) == (level is not Level.OK)


def test_kernel_boot_outcome() -> None:
    banner = b"early console\r\n[    0.000000] Linux version 6.1.0-56-amd64 (gcc) #1 SMP\r\n"
    assert kernel_boot_outcome(banner, 0.4, True).ok is True
    hung = kernel_boot_outcome(
        b"\nPhysical KASLR disabled: no suitable memory region!\n", 4.0, False
    )
    assert (
        hung.ok is False and "no kernel banner in 4.0 s (last said: Physical KASLR" in hung.detail
    )
    silent = kernel_boot_outcome(b"", 0.1, True)
    assert silent.ok is False and "exited without" in silent.detail and "no output" in silent.detail


def test_tools_and_tiers() -> None:
    assert doctor.check_tool("runsc", None, "").level is Level.WARN
    assert doctor.check_tool("runsc", "/usr/bin/runsc", "runsc version 1").detail.endswith(
        "(runsc version 1)"
    )
    assert doctor.check_tier("container", None).level is Level.OK
    gv = doctor.check_tier("gvisor", "the gvisor backend is not installed")
    assert gv.level is Level.WARN and "not installed" in gv.detail and "runsc" in gv.fix


@pytest.mark.parametrize(
    ("free_gib", "level"), [(100, Level.OK), (5, Level.OK), (4.9, Level.WARN), (0.99, Level.FAIL)]
)
def test_disk(free_gib: float, level: Level) -> None:
    assert doctor.check_disk("/var/lib/stockade", int(free_gib * doctor.GIB)).level is level


def test_redis() -> None:
    assert service_doctor.check_redis("redis://x:6379/0", None).level is Level.OK
    down = service_doctor.check_redis("redis://x:6379/0", "Connection refused")
    assert down.level is Level.WARN and "STOCKADE_REDIS_URL" in down.fix


def test_exit_code_and_output() -> None:
    warn = Finding("swap", Level.WARN, "on", "swapoff -a")
    found = [doctor.ok("cgroups", "v1"), warn]
    assert doctor.exit_code(found) == 0
    assert doctor.exit_code([*found, Finding("seccomp", Level.FAIL, "no", "fix")]) == 1
    text = format_text(found)
    assert (
        "WARN  swap     on\n" in text
        and "fix: swapoff -a" in text
        and "1 OK, 1 WARN, 0 FAIL" in text
    )
    assert json.loads(json.dumps(warn.to_dict())) == {
        "check": "swap", "level": "WARN", "detail": "on", "fix": "swapoff -a"
    }  # fmt: skip
