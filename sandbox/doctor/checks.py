"""`stockade doctor`'s judgements: host readings in, findings (OK, WARN or FAIL, with a fix) out.

Every function here is pure; sandbox.doctor.host takes the readings and runs the probes."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from sandbox.cgroups.delegation import FIX, Placement
from sandbox.cgroups.manager import V1_CONTROLLERS, V1_REQUIRED, V2_REQUIRED, CgroupMount
from sandbox.errors import SandboxError

GIB = 1 << 30
DISK_WARN_BYTES = 5 * GIB
DISK_FAIL_BYTES = 1 * GIB
V1_WANTED = ("memory", "cpu", "cpuacct", "pids", "freezer")


class Level(enum.StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    """One check's outcome; `fix` says what an operator can do about a WARN or FAIL."""

    check: str
    level: Level
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        d = asdict(self)
        d["level"] = self.level.value
        return d


def ok(check: str, detail: str) -> Finding:
    return Finding(check, Level.OK, detail)


def exit_code(findings: Iterable[Finding]) -> int:
    """1 when any finding is a FAIL, else 0 (a WARN does not stop a host from serving)."""
    return 1 if any(f.level is Level.FAIL for f in findings) else 0


@dataclass(frozen=True)
class ProbeOutcome:
    """What a probe run in a child process said: ok is None when it said nothing usable
    (it hung, crashed or printed garbage), and detail then says which."""

    ok: bool | None
    detail: str


def check_root(euid: int) -> Finding:
    """The box launcher makes namespaces, cgroups and mounts in the host's namespaces."""
    if euid == 0:
        return ok("root", "running as root, as the box launcher must")
    detail = f"running as uid {euid}: the probes below that need root fail for that reason"
    return Finding("root", Level.FAIL, detail, "run stockade doctor (and the worker) as root")


# ---- cgroups ------------------------------------------------------------------------------


def check_cgroups(
    mounts: list[CgroupMount],
    v2_controllers: Mapping[str, frozenset[str]],
    memsw: bool,
) -> list[Finding]:
    """Which hierarchy the box will use (the same choice as sandbox.cgroups.manager) and
    what each tree offers. memsw: the v1 memory root has memory.memsw.* (swap accounting)."""
    from sandbox.cgroups.manager import choose_hierarchy

    out = []
    v2 = [m for m in mounts if m.fstype == "cgroup2"]
    for m in v2:
        ctls = sorted(v2_controllers.get(m.mount_point, frozenset()))
        usable = all(c in ctls for c in V2_REQUIRED)
        what = ", ".join(ctls) if ctls else "no controllers"
        role = "usable" if usable else f"lacks {', '.join(V2_REQUIRED)}: the v1 trees are used"
        out.append(ok("cgroup2", f"cgroup2 at {m.mount_point} offers {what} ({role})"))
    try:
        choice = choose_hierarchy(mounts, dict(v2_controllers))
    except SandboxError as e:
        fix = "mount cgroup2 with memory and pids (systemd.unified_cgroup_hierarchy=1), or the v1 "
        fix += f"controllers {', '.join(V1_REQUIRED)}"
        out.insert(0, Finding("cgroups", Level.FAIL, f"no usable cgroup tree: {e.detail}", fix))
        return out
    if choice.version == 2:
        out.insert(0, ok("cgroups", f"v2 at {choice.v2_mount}"))
        return out
    mounted = sorted({c for m in mounts for c in m.controllers} & V1_CONTROLLERS)
    missing = [c for c in V1_WANTED if c not in mounted]
    detail = f"v1: {', '.join(c for c in V1_WANTED if c in mounted)} mounted"
    if missing:
        # Only memory, pids and cpuacct are required; the others cost precision, not safety.
        fix = f"mount the v1 controllers {', '.join(missing)} (or switch the host to cgroup v2)"
        out.insert(
            0, Finding("cgroups", Level.WARN, f"{detail}; missing {', '.join(missing)}", fix)
        )
    else:
        out.insert(0, ok("cgroups", detail))
    if not memsw:
        fix = "boot with swapaccount=1 so memory limits count swap, or run without swap"
        out.append(Finding("cgroup swap accounting", Level.WARN, "no memory.memsw.* files", fix))
    return out


def check_delegation(
    version: int,
    mount_point: str,
    read_only: bool,
    subtree_control: frozenset[str],
    writable: bool,
) -> Finding:
    """v2 only: box cgroups go under <mount>/stockade/, so the controllers must be enabled at
    the mount's root (or enable-able by us). v1 hierarchies need no delegation as root."""
    name = "cgroup delegation"
    if version == 1:
        return ok(name, "not needed: the v1 hierarchies are written directly as root")
    missing = [c for c in V2_REQUIRED if c not in subtree_control]
    fix = (
        "give the service a delegated cgroup: Delegate=yes in its systemd unit, or a "
        "container with its own cgroup namespace and a writable /sys/fs/cgroup"
    )
    if read_only:
        return Finding(name, Level.FAIL, f"{mount_point} is mounted read-only", fix)
    if not missing:
        return ok(name, f"{mount_point}: {', '.join(V2_REQUIRED)} enabled for children")
    if writable:
        detail = f"{mount_point}: {', '.join(missing)} not yet enabled; the box enables them"
        return ok(name, detail)
    detail = f"{mount_point}/cgroup.subtree_control is not writable and lacks {', '.join(missing)}"
    return Finding(name, Level.FAIL, detail, fix)


def check_placement(
    version: int, mount_point: str, placement: Placement | SandboxError, can_scope: bool = False
) -> Finding:
    """Where this launcher's box cgroups will go (sandbox/cgroups/delegation.py): the root's
    stockade/, a delegated unit's, a transient scope `stockade worker` asks systemd for
    (can_scope: systemd-run is there), or nowhere, with the fix."""
    name = "cgroup placement"
    if version == 1:
        return ok(name, "v1: <hierarchy>/stockade/ in each hierarchy")
    if isinstance(placement, SandboxError):
        if can_scope:
            detail = (
                f"{placement.detail.split(';')[0]}: `stockade worker` re-runs itself in a "
                "transient scope with Delegate=yes (systemd-run --scope); other launchers fail"
            )
            return Finding(name, Level.WARN, detail, FIX)
        return Finding(name, Level.FAIL, placement.detail, FIX)
    if not placement.unit:
        detail = f"{mount_point}/stockade/: no systemd unit holds this process (its root is ours)"
        return ok(name, detail)
    detail = (
        f"{mount_point}{placement.base}/stockade/, inside {placement.unit} (delegated); its "
        f"processes move to {placement.leaf} first"
    )
    return ok(name, detail)


# ---- timing disturbances ------------------------------------------------------------------


def check_swap(swaps_text: str) -> Finding:
    """/proc/swaps: a header line, then one line per active swap area."""
    areas = [line.split()[0] for line in swaps_text.splitlines()[1:] if line.strip()]
    if not areas:
        return ok("swap", "no swap: memory limits mean resident memory")
    fix = "swapoff -a (and remove swap from /etc/fstab): a box near its limit swaps, not dies"
    detail = f"swap is on ({', '.join(areas)}): it slows programs near their memory limit"
    return Finding("swap", Level.WARN, detail, fix)


def check_smt(control: str | None, siblings: Iterable[str]) -> Finding:
    """control: /sys/devices/system/cpu/smt/control, or None where the kernel lacks it;
    siblings: each CPU's topology/thread_siblings_list."""
    name = "SMT"
    state = (control or "").strip()
    fix = "echo off > /sys/devices/system/cpu/smt/control (or boot with nosmt)"
    detail = "hyper-threads share a core: a neighbour's load changes a program's CPU time"
    if state == "on":
        return Finding(name, Level.WARN, f"SMT is on: {detail}", fix)
    if state in ("off", "forceoff"):
        return ok(name, f"SMT is {state}")
    if state in ("notsupported", "notimplemented"):
        return ok(name, f"no SMT ({state})")
    shared = [s for s in siblings if "," in s or "-" in s]
    if shared:
        return Finding(name, Level.WARN, f"CPUs {shared[0]} share a core: {detail}", fix)
    return ok(name, "no CPU shares a core")


def check_cpufreq(governors: Mapping[str, str]) -> Finding:
    """governors: CPU name -> its cpufreq scaling_governor (empty where there is none)."""
    name = "CPU frequency"
    if not governors:
        return ok(name, "no cpufreq interface: the kernel does not scale the frequency")
    slow = {cpu: g for cpu, g in sorted(governors.items()) if g != "performance"}
    if not slow:
        return ok(name, f"governor performance on all {len(governors)} CPUs")
    example = ", ".join(f"{cpu}: {g}" for cpu, g in list(slow.items())[:4])
    fix = "cpupower frequency-set -g performance (or write performance to each scaling_governor)"
    detail = f"frequency scaling changes measured times ({example})"
    return Finding(name, Level.WARN, detail, fix)


# ---- kernel features, tried in a child -----------------------------------------------------

_PROBE_FIXES = {
    "user namespaces": "sysctl user.max_user_namespaces=15000 (and on Debian "
    "kernel.unprivileged_userns_clone=1 for unprivileged use)",
    "overlayfs": "modprobe overlay (CONFIG_OVERLAY_FS), and keep the state directory on a "
    "file system overlayfs accepts as a lower layer",
    "seccomp": "a kernel with CONFIG_SECCOMP_FILTER, and libseccomp installed "
    "(Debian libseccomp2) for the pyseccomp binding",
}


def check_probe(name: str, outcome: ProbeOutcome) -> Finding:
    """A kernel feature the box cannot do without, tried for real in a child."""
    if outcome.ok:
        return ok(name, outcome.detail)
    fix = _PROBE_FIXES.get(name, "")
    if "EPERM" in outcome.detail:
        fix = "run as root (see the root finding); else " + fix
    return Finding(name, Level.FAIL, outcome.detail, fix)


# ---- tools, tiers, disk ---------------------------------------------------------------------

_TOOL_FIXES = {
    "runsc": "install gVisor's runsc (Debian: apt-get install runsc) for the gvisor tier",
    "qemu-system-x86_64": "apt-get install qemu-system-x86 for the microvm tier",
}


def check_tool(tool: str, path: str | None, version: str) -> Finding:
    if path is None:
        return Finding(tool, Level.WARN, f"{tool} is not on PATH", _TOOL_FIXES.get(tool, ""))
    return ok(tool, f"{path} ({version})" if version else path)


_TIER_FIXES = {
    "gvisor": "install runsc (see its finding) and the gvisor backend",
    "microvm": "install QEMU and a guest kernel; KVM makes it fast (see those findings)",
}


def check_tier(tier: str, reason: str | None) -> Finding:
    """reason: sandbox.tiers.probe's answer (None: the tier can serve boxes here)."""
    name = f"tier {tier}"
    if reason is None:
        return ok(name, "this host can serve it")
    return Finding(name, Level.WARN, f"not available: {reason}", _TIER_FIXES.get(tier, ""))


def check_disk(path: str, free_bytes: int) -> Finding:
    """Free space where layers and images live."""
    name = "state directory space"
    detail = f"{free_bytes / GIB:.1f} GiB free at {path}"
    fix = f"free space at {path}, or `stockade layers gc`, or set STOCKADE_STATE_DIR elsewhere"
    if free_bytes < DISK_FAIL_BYTES:
        return Finding(name, Level.FAIL, f"{detail} (under 1 GiB)", fix)
    if free_bytes < DISK_WARN_BYTES:
        return Finding(name, Level.WARN, f"{detail} (under 5 GiB)", fix)
    return ok(name, detail)


def timed_out(check: str, seconds: float) -> Finding:
    """A check that did not answer in its time: said so, not waited for."""
    return Finding(check, Level.WARN, f"no answer in {seconds:g} s", "run it again; check dmesg")


def outcome_from_child(
    returncode: int, stdout: bytes, stderr: bytes
) -> tuple[ProbeOutcome, dict[str, object]]:
    """A doctor_child run's answer: its JSON line, or why there is none (a signal, a crash)."""
    import json

    lines = stdout.decode(errors="replace").strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("ok"), bool):
        return ProbeOutcome(data["ok"], str(data.get("detail", ""))), data
    why = f"killed by signal {-returncode}" if returncode < 0 else f"exited with {returncode}"
    tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return ProbeOutcome(None, f"the probe {why}: {tail[0][:200]}"), {}
