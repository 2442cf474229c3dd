"""The gVisor tier's plans (pure): a BoxSpec as an OCI config.json, runsc's command line, the
host cgroup's limits and runsc's exit code read back as a wait status."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Any

from sandbox import rlimits
from sandbox.rootfs import HOSTNAME
from sandbox.spec import BoxSpec, Limits

OCI_VERSION = "1.0.2"
PLATFORMS = ("ptrace", "kvm", "systrap")
# What the Sentry and the gofer hold themselves, on top of the program's own memory: their
# Go heaps and runtimes (13 MB of anonymous memory in a box on this host). The host cgroup
# gets this much more than the spec's memory_bytes, a backstop: the program's own pages are
# held to memory_bytes by the watcher (gvisor_watch.py).
SENTRY_MEMORY_BYTES = 48 << 20
# Host tasks: the Sentry's and the gofer's threads (34 for a one-process box here) plus,
# on the ptrace platform, a stub process and its threads for every task of the program
# and a Sentry thread for each one running (5.1 host tasks per sleeping child; a fork
# bomb held at pids=16 peaked at 317-397 host tasks). The program's own count is held
# inside the Sentry by RLIMIT_NPROC = limits.pids; the host's pids.max is the backstop
# behind it, with room to spare, because a Sentry that cannot make a thread panics.
# The Sentry grows a main thread's stack to 128 MiB at most, whatever RLIMIT_STACK says
# (measured: 120 MiB of recursion runs, 140 MiB is SIGSEGV with a 512 MiB limit). A runtime
# that sizes itself from a larger limit crashes (Ruby 3.1 dies with SIGSEGV at start from
# 129 MiB up), so the limit the program reads is the one that holds.
SENTRY_MAX_STACK_BYTES = 128 << 20
HOST_TASKS_BASE = 64
HOST_TASKS_PER_TASK = 32
PID_MAX = 4 * 1024 * 1024

_RLIMIT_NAMES = {
    resource.RLIMIT_CORE: "RLIMIT_CORE",
    resource.RLIMIT_CPU: "RLIMIT_CPU",
    resource.RLIMIT_FSIZE: "RLIMIT_FSIZE",
    resource.RLIMIT_NOFILE: "RLIMIT_NOFILE",
    resource.RLIMIT_STACK: "RLIMIT_STACK",
    resource.RLIMIT_MEMLOCK: "RLIMIT_MEMLOCK",
    resource.RLIMIT_MSGQUEUE: "RLIMIT_MSGQUEUE",
    resource.RLIMIT_NPROC: "RLIMIT_NPROC",
}


@dataclass(frozen=True)
class HostBind:
    """A host path shown read-only at the same path in the box."""

    source: str
    destination: str


@dataclass(frozen=True)
class BundleInputs:
    """What the host side prepared for one box: where its root and scratch dirs are."""

    root_path: str  # the box's assembled root (gvisor_rootfs.assemble_root)
    scratch_dir: str  # a host tmpfs holding box/ (in the root), tmp/ and shm/
    uid: int
    gid: int
    cgroups_path: str  # "/stockade/<dir>", the box cgroup made before runsc starts


def host_cgroup_limits(limits: Limits) -> tuple[int, int]:
    """(memory_bytes, pids) for the host cgroup holding the Sentry, the gofer and the stubs."""
    pids = min(HOST_TASKS_BASE + HOST_TASKS_PER_TASK * limits.pids, PID_MAX)
    return limits.memory_bytes + SENTRY_MEMORY_BYTES, pids


def oci_rlimits(limits: Limits) -> list[dict[str, Any]]:
    """The container tier's rlimits as OCI entries, which the Sentry applies itself.
    RLIMIT_NPROC becomes the pids limit: in gVisor it is what holds the program's task
    count (the host's pids.max also counts the Sentry's threads and ptrace stubs). This
    runsc does not enforce RLIMIT_CPU, so the host watches the cgroup's CPU time.
    RLIMIT_STACK is at most what the Sentry lets a stack grow to (SENTRY_MAX_STACK_BYTES)."""
    out: list[dict[str, Any]] = []
    for res, soft, hard in rlimits.plan(limits):
        if res == resource.RLIMIT_NPROC:
            soft = hard = limits.pids
        if res == resource.RLIMIT_STACK:
            soft, hard = (_at_most(v, SENTRY_MAX_STACK_BYTES) for v in (soft, hard))
        out.append({"type": _RLIMIT_NAMES[res], "soft": soft, "hard": hard})
    return out


def _at_most(value: int, ceiling: int) -> int:
    return ceiling if value == resource.RLIM_INFINITY or value > ceiling else value


def box_env(spec: BoxSpec, path: str) -> list[str]:
    """The container tier's environment: PATH, HOME and LANG, then what the spec names."""
    env = {"PATH": path, "HOME": "/box", "LANG": "C.UTF-8"}
    env.update(dict(spec.env))
    return [f"{k}={v}" for k, v in env.items()]


def _bind(source: str, destination: str) -> dict[str, Any]:
    return {
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": ["rbind", "rw", "nosuid", "nodev"],
    }


def oci_mounts(inputs: BundleInputs) -> list[dict[str, Any]]:
    """The Sentry's own /proc, and the scratch's tmp/ and shm/ (the Sentry would cover them
    in the root with a tmpfs and a /dev of its own). /, /usr and /box are the root,
    assembled on the host (gvisor_rootfs.assemble_root). The scratch is a host tmpfs so
    that its size is capped by the host kernel, the spec's files are placed before the
    program starts and collected files are read with the host's O_NOFOLLOW walk after it
    ends."""
    s = inputs.scratch_dir
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": []},
        _bind(f"{s}/tmp", "/tmp"),
        _bind(f"{s}/shm", "/dev/shm"),
    ]


def oci_config(spec: BoxSpec, inputs: BundleInputs, path_env: str) -> dict[str, Any]:
    """The OCI runtime config for one box: no capabilities, the box uid, read-only root,
    the container tier's rlimits and environment, and every namespace runsc offers."""
    empty: list[str] = []
    caps = {k: empty for k in ("bounding", "effective", "inheritable", "permitted", "ambient")}
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": inputs.uid, "gid": inputs.gid, "additionalGids": []},
            "args": list(spec.argv),
            "env": box_env(spec, path_env),
            "cwd": "/box",
            "capabilities": caps,
            "rlimits": oci_rlimits(spec.limits),
            "noNewPrivileges": True,
        },
        # Writable for the Sentry, because /box is in the same gofer mount: the
        # host refuses writes everywhere else (read-only binds, an overlay with no upper),
        # and before that the Sentry's permission checks do (the box user owns nothing
        # outside the scratch).
        "root": {"path": inputs.root_path, "readonly": False},
        "hostname": HOSTNAME,
        "mounts": oci_mounts(inputs),
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            # An existing cgroup: runsc joins it and leaves its limits alone (it writes
            # resources only into directories it creates itself).
            "cgroupsPath": inputs.cgroups_path,
        },
    }


def runsc_flags(runsc: str, state_dir: str, platform: str, box_dir: str) -> list[str]:
    """Global flags: a private state root, the platform, no network, logs in the box dir
    (so nothing runsc says can be mistaken for the program's stderr). The info-level log of
    each runsc command (--debug-log without --debug) is where `run` says the program's raw
    wait status (gvisor_logs.wait_status); the Sentry's and gofer's go to /dev/null
    (gvisor_logs.quiet_sandbox_logs)."""
    return [
        runsc,
        f"--root={state_dir}",
        f"--platform={platform}",
        "--network=none",
        f"--log={box_dir}/runsc.log",
        f"--panic-log={box_dir}/panic.log",
        f"--debug-log={box_dir}/%COMMAND%.log",
    ]


def run_argv(runsc: str, state_dir: str, platform: str, box_dir: str, cid: str) -> list[str]:
    """`runsc run`: create, start and wait in one process that is the sandbox's parent, so
    its exit is the program's end at once (`runsc wait` polls and lags by about 1 s). The
    pid file appears when create is done, just before start: the CPU baseline."""
    flags = runsc_flags(runsc, state_dir, platform, box_dir)
    return [*flags, "run", "--bundle", box_dir, "--pid-file", f"{box_dir}/pid", cid]


def delete_argv(runsc: str, state_dir: str, cid: str) -> list[str]:
    return [runsc, f"--root={state_dir}", "delete", "--force", cid]


def wait_status_from_exit(code: int) -> int:
    """runsc exits with the program's code, or 128 + n when signal n killed it (its
    main.go, like a shell), so an exit(129..192) of the program reads as a signal here:
    only the fallback for when `run`'s log has no wait status (gvisor_logs.wait_status)."""
    if 128 < code <= 128 + 64:
        return code - 128  # a wait status for "killed by signal n" (wait(2))
    return (code & 0xFF) << 8
