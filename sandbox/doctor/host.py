"""`stockade doctor`'s thin layer: reads /proc and /sys, runs the probes (each bounded in
time, each in a child where it changes the process), and hands readings to sandbox.doctor.checks."""

from __future__ import annotations

import functools
import glob
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sandbox.cgroups.delegation import Placement, this_placement
from sandbox.cgroups.manager import choose_hierarchy, parse_mountinfo
from sandbox.config import HostConfig
from sandbox.doctor import checks as doctor
from sandbox.doctor.checks import Finding, ProbeOutcome
from sandbox.doctor.kvm import KvmReadings, check_kvm, kernel_boot_outcome
from sandbox.errors import SandboxError
from sandbox.spec import TIERS
from sandbox.tiers import probe

CHILD_TIMEOUT_S = 3.0
KERNEL_BOOT_TIMEOUT_S = 4.0  # a working KVM prints the banner in well under a second
DEADLINE_S = 8.0  # the whole doctor answers within this, finished or not
KVM_MODULES = ("kvm", "kvm_intel", "kvm_amd", "kvm_pvm")
CPU = "/sys/devices/system/cpu"


@dataclass(frozen=True)
class Options:
    config: HostConfig
    kernel: str | None = None  # a guest kernel for the KVM boot test (default: /boot's)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def run_child(name: str, *args: str) -> tuple[ProbeOutcome, dict[str, object]]:
    """A sandbox.doctor.child probe in a fresh interpreter, killed after CHILD_TIMEOUT_S."""
    argv = [sys.executable, "-m", "sandbox.doctor.child", name, *args]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=CHILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return ProbeOutcome(None, f"no answer in {CHILD_TIMEOUT_S:g} s (the probe was killed)"), {}
    return doctor.outcome_from_child(proc.returncode, proc.stdout, proc.stderr)


# ---- one function per check: readings in, findings out -------------------------------------


def root(_: Options) -> list[Finding]:
    return [doctor.check_root(os.geteuid())]


def cgroups(_: Options) -> list[Finding]:
    mountinfo = _read("/proc/self/mountinfo") or ""
    mounts = parse_mountinfo(mountinfo)
    v2 = {
        m.mount_point: frozenset((_read(m.mount_point + "/cgroup.controllers") or "").split())
        for m in mounts
        if m.fstype == "cgroup2"
    }
    memory = next((m.mount_point for m in mounts if "memory" in m.controllers), None)
    memsw = memory is not None and os.path.exists(memory + "/memory.memsw.limit_in_bytes")
    findings = doctor.check_cgroups(mounts, v2, memsw)
    try:
        choice = choose_hierarchy(mounts, v2)
    except SandboxError:
        return findings
    point = choice.v2_mount
    control = (
        frozenset((_read(point + "/cgroup.subtree_control") or "").split())
        if point
        else frozenset()
    )
    findings.append(
        doctor.check_delegation(
            choice.version,
            point,
            _mount_read_only(mountinfo, point),
            control,
            bool(point) and os.access(point + "/cgroup.subtree_control", os.W_OK),
        )
    )
    placement: Placement | SandboxError = Placement("")
    if choice.version == 2:
        try:
            placement = this_placement(point)
        except SandboxError as e:
            placement = e
    can_scope = shutil.which("systemd-run") is not None
    findings.append(doctor.check_placement(choice.version, point, placement, can_scope))
    return findings


def _mount_read_only(mountinfo: str, point: str) -> bool:
    # proc(5): field 5 is the mount point, field 6 the per-mount options.
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[4] == point:
            return "ro" in fields[5].split(",")
    return False


def swap(_: Options) -> list[Finding]:
    return [doctor.check_swap(_read("/proc/swaps") or "")]


def timing(_: Options) -> list[Finding]:
    siblings = [
        (_read(p) or "").strip()
        for p in glob.glob(f"{CPU}/cpu[0-9]*/topology/thread_siblings_list")
    ]
    governors = {
        p.split("/")[5]: (_read(p) or "").strip()
        for p in glob.glob(f"{CPU}/cpu[0-9]*/cpufreq/scaling_governor")
    }
    return [
        doctor.check_smt(_read(f"{CPU}/smt/control"), siblings),
        doctor.check_cpufreq(governors),
    ]


def userns(_: Options) -> list[Finding]:
    return [doctor.check_probe("user namespaces", run_child("userns")[0])]


def overlayfs(_: Options) -> list[Finding]:
    base = tempfile.mkdtemp(prefix="stockade-doctor-")
    try:
        outcome = run_child("overlay", base)[0]
    finally:
        # The child's mounts lived in its own mount namespace and went with it: only the
        # empty directory is left here.
        shutil.rmtree(base, ignore_errors=True)
    return [doctor.check_probe("overlayfs", outcome)]


def seccomp(opts: Options) -> list[Finding]:
    return [doctor.check_probe("seccomp", run_child("seccomp", opts.config.profiles_dir)[0])]


def kvm(opts: Options) -> list[Finding]:
    modules = frozenset(m for m in KVM_MODULES if os.path.isdir(f"/sys/module/{m}"))
    if not os.path.exists("/dev/kvm"):
        return [check_kvm(KvmReadings(device=False, modules=modules))]
    tiny, data = run_child("kvm")
    api = data.get("api_version")
    readings = KvmReadings(
        device=True,
        open_error=str(data.get("open_error", "")),
        api_version=api if isinstance(api, int) else None,
        modules=modules,
        tiny_guest=tiny,
        kernel_boot=_kernel_boot(opts) if tiny.ok else None,
    )
    return [check_kvm(readings)]


def _kernel_boot(opts: Options) -> ProbeOutcome | None:
    kernel = guest_kernel(opts.kernel, opts.config.state_dir)
    return boot_kernel(kernel) if kernel else None


def guest_kernel(explicit: str | None, state_dir: str) -> str | None:
    """The kernel to boot: the one asked for, else the microvm tier's own prepared vmlinux
    (what that tier would boot), else the host's /boot image."""
    if explicit:
        return explicit if os.path.isfile(explicit) else None
    prepared = sorted(glob.glob(f"{state_dir}/microvm/kernel/linux-image-*/vmlinux"))
    candidates = [*prepared[-1:], f"/boot/vmlinuz-{platform.release()}", "/boot/vmlinuz"]
    return next((k for k in candidates if os.path.isfile(k)), None)


def kernel_boot_argv(qemu: str, kernel: str, accel: str = "kvm") -> list[str]:
    """A microvm with no disk and no initramfs: the kernel prints its banner, panics for want
    of a root file system, and (panic=-1 with -no-reboot) QEMU exits."""
    cpu = ["-cpu", "host"] if accel == "kvm" else []
    return [
        qemu, "-accel", accel, "-M", "microvm", *cpu, "-m", "128", "-smp", "1",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
        "-kernel", kernel,
        "-append", "console=ttyS0 earlyprintk=ttyS0 panic=-1 reboot=t pci=off",
    ]  # fmt: skip


def boot_kernel(kernel: str, accel: str = "kvm") -> ProbeOutcome | None:
    """Boot `kernel` for at most KERNEL_BOOT_TIMEOUT_S; None when QEMU is not installed."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return None
    started = time.monotonic()
    try:
        proc = subprocess.run(
            kernel_boot_argv(qemu, kernel, accel),
            capture_output=True,
            timeout=KERNEL_BOOT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        out, finished = proc.stdout, True
    except subprocess.TimeoutExpired as e:  # run() killed QEMU; e.stdout is what it said
        out, finished = e.stdout or b"", False
    outcome = kernel_boot_outcome(out, time.monotonic() - started, finished)
    return ProbeOutcome(outcome.ok, f"{kernel}: {outcome.detail}")


def tools(_: Options) -> list[Finding]:
    out = []
    for tool in ("runsc", "qemu-system-x86_64"):
        path = shutil.which(tool)
        version = ""
        if path:
            try:
                proc = subprocess.run(
                    [path, "--version"], capture_output=True, timeout=CHILD_TIMEOUT_S, text=True
                )
                version = (proc.stdout.strip().splitlines() or [""])[0]
            except (OSError, subprocess.TimeoutExpired) as e:
                version = f"--version failed: {e}"
        out.append(doctor.check_tool(tool, path, version))
    return out


def tier(name: str) -> Callable[[Options], list[Finding]]:
    """The check of one tier: sandbox.tiers.probe's own answer, or why it had none."""

    def check(opts: Options) -> list[Finding]:
        try:
            reason = probe(name, opts.config)
        except Exception as e:  # a backend being written may not answer yet
            reason = f"its probe failed: {e!r}"
        return [doctor.check_tier(name, reason)]

    return check


def disk(opts: Options) -> list[Finding]:
    path = os.path.abspath(opts.config.state_dir)
    while not os.path.exists(path):  # not made yet: its file system is the parent's
        path = os.path.dirname(path)
    st = os.statvfs(path)
    return [doctor.check_disk(path, st.f_bavail * st.f_frsize)]


CHECKS: tuple[tuple[str, Callable[[Options], list[Finding]]], ...] = (
    ("root", root),
    ("cgroups", cgroups),
    ("swap", swap),
    ("SMT and CPU frequency", timing),
    ("user namespaces", userns),
    ("overlayfs", overlayfs),
    ("seccomp", seccomp),
    ("KVM", kvm),
    ("tools", tools),
    *((f"tier {t}", tier(t)) for t in TIERS),
    ("state directory space", disk),
)
# A check of a caller's own (the service adds Redis): a name and what it finds.
Check = Callable[[], list[Finding]]


def run_checks(
    opts: Options, extra: Sequence[tuple[str, Check]] = (), deadline_s: float = DEADLINE_S
) -> list[Finding]:
    """Every check at once (the host's, then the caller's `extra`), each in a daemon thread;
    one still running at the deadline is reported as such (a hung probe's child is killed by
    its own timeout)."""
    results: dict[str, list[Finding]] = {}
    checks = [*((name, functools.partial(check, opts)) for name, check in CHECKS), *extra]

    def one(name: str, check: Check) -> None:
        try:
            results[name] = check()
        except Exception as e:  # a broken check is a finding, not a traceback
            results[name] = [Finding(name, doctor.Level.FAIL, f"the check itself failed: {e!r}")]

    threads = [threading.Thread(target=one, args=c, daemon=True) for c in checks]
    for t in threads:
        t.start()
    end = time.monotonic() + deadline_s
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    findings: list[Finding] = []
    for name, _ in checks:
        findings += results.get(name) or [doctor.timed_out(name, deadline_s)]
    return findings
