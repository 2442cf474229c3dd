"""What a killed runsc leaves behind, swept: its state files under our --root, the cgroup
directories it made (`runsc-<n>` at a hierarchy's root, or beside our box cgroup in the
controllers we do not manage), and the box dirs and mounts of a backend that died."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess

from sandbox.backends.gvisor import bundle
from sandbox.backends.gvisor.rootfs import unmount
from sandbox.cgroups import parse_mountinfo
from sandbox.cgroups.base import pid_alive
from sandbox.cgroups.manager import PARENT

# Our container ids and box cgroups are gvisor-<backend pid>-<n>; `runsc do` names its own
# runsc-<n>, at the root of every hierarchy.
CID = re.compile(r"^gvisor-(\d+)-(\d+)$")
RUNSC_DO = re.compile(r"^runsc-\d+$")
DELETE_TIMEOUT_S = 10.0


def v1_roots(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points of every cgroup v1 hierarchy: runsc makes a directory in each one it
    knows (blkio, cpu, cpuset, devices, the named systemd one ...), not only ours."""
    with open(mountinfo) as f:
        mounts = parse_mountinfo(f.read())
    return [m.mount_point for m in mounts if m.fstype == "cgroup" and m.root == "/"]


def _rmdir(path: str) -> bool:
    """rmdir refuses a cgroup that still holds a task (EBUSY): a live box is never lost."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def remove_box_cgroups(dir_name: str, roots: list[str]) -> list[str]:
    """The box's directory in every hierarchy, wherever runsc made one and did not get to
    remove it (it was killed); the ones still holding a task are returned."""
    busy = []
    for root in roots:
        path = os.path.join(root, PARENT, dir_name)
        if os.path.isdir(path) and not _rmdir(path):
            busy.append(path)
    return busy


def delete_state(runsc: str, state_dir: str, cid: str) -> None:
    """`runsc delete --force` when the container's state is still there: it kills what is
    left of the sandbox and removes the cgroups runsc made for it."""
    if not any(name.startswith(cid + "_") for name in _listdir(state_dir)):
        return
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        subprocess.run(
            bundle.delete_argv(runsc, state_dir, cid),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=DELETE_TIMEOUT_S,
            check=False,
        )
    for name in _listdir(state_dir):
        if name.startswith(cid + "_"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(state_dir, name))


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def sweep_stale(runsc: str, base_dir: str, state_dir: str) -> list[str]:
    """Everything of gVisor boxes whose backend process is gone: runsc state, box dirs
    (unmounting what is mounted under them first), box cgroups in every hierarchy, and
    empty `runsc-<n>` cgroups. What still holds a task is left alone."""
    removed: list[str] = []
    dead_cids = set()
    for name in _listdir(state_dir):
        cid = name.split("_", 1)[0]
        match = CID.match(cid)
        if match and not pid_alive(int(match.group(1))):
            dead_cids.add(cid)
    for cid in sorted(dead_cids):
        delete_state(runsc, state_dir, cid)
        removed.append(f"{state_dir}/{cid}")
    for name in _listdir(base_dir):
        owner = name.split(".", 1)[0]  # <backend pid>.<n>
        if owner.isdigit() and not pid_alive(int(owner)):
            remove_tree(os.path.join(base_dir, name))
            removed.append(os.path.join(base_dir, name))
    roots = v1_roots()
    for root in roots:
        parent = os.path.join(root, PARENT)
        for name in _listdir(parent):
            match = CID.match(name)
            if match and not pid_alive(int(match.group(1))) and _rmdir(os.path.join(parent, name)):
                removed.append(os.path.join(parent, name))
        for name in _listdir(root):
            if RUNSC_DO.match(name) and _rmdir(os.path.join(root, name)):
                removed.append(os.path.join(root, name))
    return removed


def mounts_under(path: str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points at or below `path`, deepest first (the order to unmount them)."""
    found = []
    with open(mountinfo) as f:
        for line in f:
            point = line.split()[4]
            if point == path or point.startswith(path.rstrip("/") + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_tree(path: str) -> None:
    """Unmount everything below `path`, then remove it. Never follows a mount across: the
    mounts are gone before rmtree walks the directory."""
    for point in mounts_under(path):
        unmount(point)
    if not mounts_under(path):
        shutil.rmtree(path, ignore_errors=True)
