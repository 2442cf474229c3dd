"""The gVisor tier's host side of the file system: root skeletons, an image's read-only
overlay, the per-box scratch tmpfs, files placed in and collected out."""

from __future__ import annotations

import errno
import os
import shutil

from sandbox import files as box_files
from sandbox import mounts as m
from sandbox import syscalls as sc
from sandbox.backends.gvisor.bundle import HostBind
from sandbox.errors import SandboxError
from sandbox.rootfs import HOST_FILES, HOST_PATHS, BoxUser, init_layer
from sandbox.spec import BoxSpec, FileIn, box_path

MOUNT_DIRS = ("/etc", "/box", "/tmp", "/proc", "/dev", "/dev/shm")


def host_binds(host_root: str = "/") -> tuple[list[HostBind], dict[str, str]]:
    """The host paths of `--rootfs host` (rootfs.HOST_PATHS and HOST_FILES) as read-only
    binds, and the merged-/usr symlinks (/bin -> usr/bin) that stay symlinks."""
    binds: list[HostBind] = []
    links: dict[str, str] = {}
    for path in HOST_PATHS:
        src = os.path.join(host_root, path.lstrip("/"))
        if os.path.islink(src):
            links[path] = os.readlink(src)
        elif os.path.isdir(src):
            binds.append(HostBind(src, path))
    for path in HOST_FILES:
        src = os.path.join(host_root, path.lstrip("/"))
        if os.path.isfile(src):
            binds.append(HostBind(src, path))
    return binds, links


def build_skeleton(
    root: str, user: BoxUser, binds: list[HostBind], links: dict[str, str]
) -> list[HostBind]:
    """A root directory holding only mount points, symlinks and the init layer's identity
    files (/etc/passwd naming the box uid, /etc/hosts, ...). It is the root of a host box
    and the top lower layer of an image box; runsc mounts it read-only. The small, static
    configuration under /etc is copied in (links kept as links) rather than bound: each bind
    is a gofer mount that every box's start pays for, and the copy is as fresh as the
    backend. Returns the binds that are still to be mounted (/usr)."""
    os.makedirs(root, mode=0o755)
    for d in MOUNT_DIRS:
        os.makedirs(root + d, mode=0o755, exist_ok=True)
    os.chmod(root + "/tmp", 0o1777)
    for path, target in links.items():
        os.symlink(target, root + path)
    mounted = []
    for b in binds:
        dest = root + b.destination
        os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
        if b.destination.startswith("/etc/"):
            if os.path.isdir(b.source):
                shutil.copytree(b.source, dest, symlinks=True)
            else:
                shutil.copy2(b.source, dest, follow_symlinks=False)
            continue
        mounted.append(b)
        if os.path.isdir(b.source):
            os.makedirs(dest, mode=0o755, exist_ok=True)
        else:
            with open(dest, "wb"):
                pass
    for op in init_layer(user):
        assert isinstance(op, m.WriteFile)
        with open(root + op.path, "wb") as f:
            f.write(op.content)
        os.chmod(root + op.path, op.mode)
    return mounted


def mount_image(target: str, layers: list[str]) -> None:
    """The image's layers, top-most first, as one overlay with no upper dir: the host
    kernel itself refuses every write, whatever the gofer is asked. An overlay (not a
    bind of each layer) because only overlayfs merges layers and honours whiteouts."""
    os.makedirs(target, mode=0o755)
    lower = ":".join(layers)
    flags = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV
    sc.mount("overlay", target, "overlay", flags, f"lowerdir={lower}", step="gvisor: image")


def _bind(source: str, target: str, readonly: bool) -> None:
    """A host bind; read-only ones get a second call, since MS_RDONLY is ignored by the first
    (mount(2), "Creating a bind mount"), and then the same flags on every host submount the
    recursive bind copied (the gofer serves those too, and would write into them)."""
    flags = sc.MS_BIND | sc.MS_REC | sc.MS_NOSUID | sc.MS_NODEV
    sc.mount(source, target, None, flags, step="gvisor: root")
    if readonly:
        flags = sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV
        sc.mount(None, target, None, flags, step="gvisor: root")
        m.seal_readonly(target, sc.MS_NOSUID | sc.MS_NODEV, step="gvisor: root")


def assemble_root(
    target: str, skeleton: str | None, binds: list[HostBind], scratch: str
) -> list[str]:
    """The box's file system as one host mount tree, handed to runsc as its root so that one
    gofer mount serves /, /usr and /box: each bind runsc makes costs every box's start a
    gofer connection (five of them were 5-25% of a /bin/true box here). The gofer carries
    host submounts of its root (it binds the root with MS_REC). /tmp and /dev/shm stay
    runsc binds (gvisor_bundle.oci_mounts): the Sentry covers the root's /dev with its own,
    and puts an uncapped tmpfs of its own at a /tmp that no mount names.

    `skeleton` is bound read-only at `target` (host rootfs), or None when `target` is
    already an image's overlay, which has no upper dir and so is read-only in itself. Then
    `binds` (/usr) go on read-only, and the scratch's box/ read-write. The host kernel
    refuses every other write (EROFS), whatever the gofer, which runs as root, is asked.
    Returns the mount points made, in the order they were made."""
    made: list[str] = []
    try:
        if skeleton is not None:
            os.makedirs(target, mode=0o755)
            _bind(skeleton, target, readonly=True)
            made.append(target)
        for b in binds:
            _bind(b.source, target + b.destination, readonly=True)
            made.append(target + b.destination)
        _bind(f"{scratch}/box", target + "/box", readonly=False)
        made.append(target + "/box")
    except BaseException:
        for point in reversed(made):
            unmount(point)
        raise
    return made


def mount_scratch(target: str, spec: BoxSpec, user: BoxUser) -> None:
    """The box's read-write layer: one size-capped host tmpfs holding box/, tmp/ and shm/,
    as in the container tier, seen at /box, /tmp and /dev/shm."""
    lim = spec.limits
    os.makedirs(target, mode=0o700)
    opts = f"size={lim.scratch_bytes},nr_inodes={lim.scratch_inodes},mode=0755"
    flags = sc.MS_NOSUID | sc.MS_NODEV
    sc.mount("tmpfs", target, "tmpfs", flags, opts, step="gvisor: scratch")
    try:
        os.mkdir(target + "/box", 0o755)
        os.chown(target + "/box", user.uid, user.gid)
        for d in ("tmp", "shm"):
            os.mkdir(f"{target}/{d}")
            os.chmod(f"{target}/{d}", 0o1777)
    except OSError as e:
        raise SandboxError("gvisor: scratch", f"mkdir({target}/box)", e.errno or 0) from e


def host_path(scratch: str, path: str) -> str:
    """Where a box path under /box or /tmp lives on the host's scratch tmpfs."""
    full = box_path(path)
    return scratch + full  # /box/x -> <scratch>/box/x, /tmp/x -> <scratch>/tmp/x


def place_files(scratch: str, files: tuple[FileIn, ...], user: BoxUser) -> None:
    """The spec's files, owned by the box user. Nothing of the box has run yet, so plain
    path operations cannot meet a symlink the program planted."""
    for f in files:
        dest = host_path(scratch, f.path)
        try:
            _make_parents(scratch, os.path.dirname(dest), user)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                view = memoryview(f.content)
                while view:
                    view = view[os.write(fd, view) :]
                os.fchown(fd, user.uid, user.gid)
                os.fchmod(fd, f.mode & 0o7777)
            finally:
                os.close(fd)
        except OSError as e:
            detail = "the scratch tmpfs is full" if e.errno == errno.ENOSPC else ""
            raise SandboxError("gvisor: files", f"write({f.path})", e.errno or 0, detail) from e


def _make_parents(scratch: str, directory: str, user: BoxUser) -> None:
    if directory in (scratch + "/box", scratch + "/tmp") or os.path.isdir(directory):
        return
    _make_parents(scratch, os.path.dirname(directory), user)
    os.mkdir(directory, 0o755)
    os.chown(directory, user.uid, user.gid)


def collect(scratch: str, spec: BoxSpec) -> tuple[dict[str, bytes], dict[str, str]]:
    """spec.collect read from the scratch tmpfs once nothing of the box runs: regular files
    only, every component opened with O_NOFOLLOW (sandbox/files.py), sizes capped."""
    got: dict[str, bytes] = {}
    refused: dict[str, str] = {}
    budget = spec.collect_max_bytes
    for want in spec.collect:
        full = box_path(want)
        if want.endswith("/"):
            tree = box_files.read_tree_beneath(scratch + full, budget)
            items = {k[len(scratch) :]: v for k, v in tree.items()}
        else:
            items = {full: box_files.read_regular_beneath(scratch + full, budget)}
        for path, data in items.items():
            if isinstance(data, bytes):
                got[path] = data
                budget -= len(data)
            else:
                refused[path] = data.replace(scratch, "")
    return got, refused


def unmount(target: str) -> None:
    """Detach a mount made here; a target that is not (or no longer) a mount is fine."""
    try:
        sc.umount2(target, sc.MNT_DETACH, step="gvisor: cleanup")
    except SandboxError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise
