"""Where box cgroups go on a cgroup2 host: a systemd unit's delegated subtree, or the root.

systemd owns the cgroup2 tree and hands a unit its subtree only with Delegate=yes
(systemd.resource-control(5); "Control Group APIs and Delegation" in systemd's docs): a
delegated unit manages what lies below its cgroup and nothing else. So under systemd a
launcher puts its boxes at <unit>/stockade/<box> and moves the unit's own processes into the
leaf <unit>/supervisor first, because cgroup-v2.rst's "No Internal Process Constraint" lets a
cgroup that holds processes give no controller to its children. Without systemd (a plain
host, or a container with a private cgroup namespace whose entrypoint made a leaf of its own)
the namespace's root is ours: <root>/stockade/<box>, as before.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from sandbox.cgroups.fs import CgroupOps, fail, read_file, write_file
from sandbox.errors import SandboxError

LEAF = "supervisor"
SYSTEMD_RUNNING = "/run/systemd/system"  # sd_booted(3)
DELEGATE_XATTR = "trusted.delegate"  # set by systemd (251+) on each delegated cgroup
FIX = (
    "run it in a unit with Delegate=yes (deploy/systemd/stockade-worker.service), or under "
    "`systemd-run --scope -p Delegate=yes -- <command>` (`stockade worker` does that itself)"
)


@dataclass(frozen=True)
class Placement:
    """base: the cgroup (relative to the mount) whose stockade/ holds the boxes; leaf: where
    the launcher's processes must live first ("" when nothing moves); unit: the systemd unit
    that owns base ("" without systemd)."""

    base: str
    leaf: str = ""
    unit: str = ""


def own_cgroup(proc_self_cgroup: str) -> str:
    """The cgroup2 path of "0::<path>" in /proc/self/cgroup (pure)."""
    for line in proc_self_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    raise SandboxError("cgroup", "read(/proc/self/cgroup)", detail="no cgroup2 (0::) entry")


def unit_of(path: str) -> tuple[str, str]:
    """(the cgroup of the first .service or .scope unit on path, its name), or ("", "") when
    path lies in no unit (pure). The first: a user's manager (user@0.service) is the unit the
    system manager delegated, whatever it runs below."""
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        if part.endswith((".service", ".scope")):
            return "/" + "/".join(parts[: i + 1]), part
    return "", ""


def plan_placement(path: str, systemd: bool, delegated: bool | None) -> Placement:
    """Where boxes go for a launcher in cgroup `path` (pure). delegated: whether its unit has
    Delegate=yes (None when there is no unit). Raises, naming the fix, where systemd owns the
    tree and has delegated nothing to us."""
    unit_dir, unit = unit_of(path) if systemd else ("", "")
    if not unit_dir:
        # No unit on the path: no systemd, or systemd outside our cgroup namespace (a
        # container whose entrypoint made a leaf such as /init).
        return Placement("")
    if not delegated:
        raise SandboxError(
            "cgroup",
            "placement",
            detail=f"{unit} ({unit_dir}) is not delegated, and its cgroups are systemd's; {FIX}",
        )
    return Placement(unit_dir, leaf=unit_dir + "/" + LEAF, unit=unit)


def is_delegated(cgroup_dir: str) -> bool:
    try:
        return os.getxattr(cgroup_dir, DELEGATE_XATTR) == b"1"
    except OSError:
        return False


def this_placement(mount: str) -> Placement:
    """plan_placement for this process on the cgroup2 tree at mount."""
    path = own_cgroup(read_file("/proc/self/cgroup").decode())
    systemd = os.path.isdir(SYSTEMD_RUNNING)
    unit_dir, _ = unit_of(path) if systemd else ("", "")
    delegated = is_delegated(mount + unit_dir) if unit_dir else None
    return plan_placement(path, systemd, delegated)


def move_to_leaf(mount: str, placement: Placement, ops: CgroupOps) -> None:
    """Move every process of the unit's own cgroup (ours, since it is delegated) into the
    leaf; a process forked meanwhile lands where its parent was, so repeat until none is
    left. Processes already in the leaf or deeper stay where they are."""
    if not placement.leaf:
        return
    leaf = mount + placement.leaf
    try:
        ops.mkdir(leaf)
    except FileExistsError:
        pass
    except OSError as e:
        raise fail(f"mkdir({leaf})", e) from e
    procs = mount + placement.base + "/cgroup.procs"
    for _ in range(100):
        pids = read_file(procs).split()
        if not pids:
            return
        for pid in pids:
            try:
                write_file(leaf + "/cgroup.procs", pid)
            except SandboxError as e:
                if e.errno != errno.ESRCH:  # it exited meanwhile
                    raise
    raise SandboxError("cgroup", f"write({leaf}/cgroup.procs)", detail="processes keep arriving")
