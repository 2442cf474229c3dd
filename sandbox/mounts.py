"""Mount plans as pure data, and the thin layer that applies them (see mount(2), pivot_root(2))."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sandbox import syscalls as sc
from sandbox.errors import SandboxError

# Every mount in a box is nosuid and nodev (device nodes are separate binds of host nodes).
SAFE = sc.MS_NOSUID | sc.MS_NODEV


@dataclass(frozen=True)
class Mkdir:
    path: str
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Symlink:
    target: str
    path: str


@dataclass(frozen=True)
class WriteFile:
    path: str
    content: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Bind:
    """Bind `source` (a host path while building a template) onto `path`."""

    source: str
    path: str
    readonly: bool = True
    flags: int = SAFE
    # A bind keeps the source mount's flags; a second call is needed only to change them.
    remount: bool = True


@dataclass(frozen=True)
class Tmpfs:
    path: str
    options: str
    flags: int = SAFE


@dataclass(frozen=True)
class Overlay:
    """A read-only overlay of `lowers` (top-most first) at `path`: with no upper layer the
    kernel mounts it read-only (Documentation/filesystems/overlayfs.rst, "Multiple lower
    layers")."""

    path: str
    lowers: tuple[str, ...]
    flags: int = SAFE | sc.MS_RDONLY


@dataclass(frozen=True)
class Proc:
    path: str


@dataclass(frozen=True)
class Remount:
    """Change the flags of the mount at `path` (for example, make the template root read-only)."""

    path: str
    flags: int
    bind: bool = True


Op = Mkdir | Symlink | WriteFile | Bind | Tmpfs | Overlay | Proc | Remount


def _at(root: str, path: str) -> str:
    return root + path if root != "/" else path


def apply(ops: list[Op] | tuple[Op, ...], root: str, step: str) -> None:
    """Carry out a plan with every path taken under `root` (the mount point being built)."""
    for op in ops:
        try:
            _apply_one(op, root, step)
        except OSError as e:
            raise SandboxError(step, f"{type(op).__name__.lower()}({op.path})", e.errno or 0) from e


def _apply_one(op: Op, root: str, step: str) -> None:
    if isinstance(op, Mkdir):
        target = _at(root, op.path)
        os.mkdir(target, op.mode)  # callers run with umask 0
        if op.uid or op.gid:
            os.chown(target, op.uid, op.gid)
    elif isinstance(op, Symlink):
        os.symlink(op.target, _at(root, op.path))
    elif isinstance(op, WriteFile):
        fd = os.open(
            _at(root, op.path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, op.mode
        )
        try:
            os.write(fd, op.content)
        finally:
            os.close(fd)
    elif isinstance(op, Bind):
        target = _at(root, op.path)
        sc.mount(op.source, target, None, sc.MS_BIND | sc.MS_REC, None, step=step)
        if not op.remount:
            return
        # MS_BIND ignores the other flags on the first call; read-only, nosuid and nodev
        # only take effect through a second, remounting call (mount(2), "Creating a bind mount").
        flags = sc.MS_BIND | sc.MS_REMOUNT | op.flags | (sc.MS_RDONLY if op.readonly else 0)
        sc.mount(None, target, None, flags, None, step=step)
        if op.readonly:
            seal_readonly(target, op.flags, step)
    elif isinstance(op, Tmpfs):
        sc.mount("tmpfs", _at(root, op.path), "tmpfs", op.flags, op.options, step=step)
    elif isinstance(op, Overlay):
        data = "lowerdir=" + ":".join(op.lowers)
        sc.mount("overlay", _at(root, op.path), "overlay", op.flags, data, step=step)
    elif isinstance(op, Proc):
        flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
        sc.mount("proc", _at(root, op.path), "proc", flags, None, step=step)
    else:
        flags = op.flags | sc.MS_REMOUNT | (sc.MS_BIND if op.bind else 0)
        sc.mount(None, _at(root, op.path), None, flags, None, step=step)


# ---- read-only all the way down ------------------------------------------------------------

# Per-mount flags a remount would otherwise reset, by their name in mountinfo's field 6.
_KEPT_OPTIONS = {"nosuid": sc.MS_NOSUID, "nodev": sc.MS_NODEV, "noexec": sc.MS_NOEXEC}
_use_mount_setattr = True  # until the kernel says ENOSYS


def seal_readonly(target: str, flags: int, step: str, walk: bool = False) -> None:
    """Make every mount below `target` read-only with `flags` (MS_NOSUID, MS_NODEV, ...)
    too. A recursive bind copies the host's submounts (a separate /usr/local, say) with
    their own flags, and the remount that follows it changes only the top one (mount(2),
    "Creating a bind mount"), so a writable host submount would stay writable in the box.
    mount_setattr(2) with AT_RECURSIVE does the whole tree in one call (5.12+); before that,
    or with walk=True, each submount listed in /proc/self/mountinfo is remounted in turn."""
    global _use_mount_setattr
    if not walk and _use_mount_setattr:
        if sc.mount_setattr_recursive(target, flags | sc.MS_RDONLY, step=step):
            return
        _use_mount_setattr = False
    with open("/proc/self/mountinfo", "rb") as f:
        below = submounts(os.fsdecode(f.read()), os.path.realpath(target))
    for point, kept in below:
        remount = sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | flags | kept
        sc.mount(None, os.fsencode(point), None, remount, None, step=step)


def submounts(mountinfo: str, target: str) -> list[tuple[str, int]]:
    """Pure: the mount points strictly below `target` in a /proc/<pid>/mountinfo text, in
    mount order, each with the nosuid/nodev/noexec flags it has now. proc_pid_mountinfo(5)."""
    found: list[tuple[str, int]] = []
    prefix = target.rstrip("/") + "/"
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 6:
            continue
        point = _unescape(fields[4])
        if point.startswith(prefix) and point != prefix:  # prefix is "/" for target "/"
            options = fields[5].split(",")
            found.append((point, sum(v for k, v in _KEPT_OPTIONS.items() if k in options)))
    return found


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as \\ooo octal."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def enter_root(new_root: str, step: str = "pivot_root") -> None:
    """Make `new_root` the root and detach the old one (pivot_root(".", ".") needs no
    put_old directory: pivot_root(2), NOTES)."""
    os.chdir(new_root)
    sc.pivot_root(".", ".", step=step)
    # The old root is now stacked under the new one at "/"; detach it lazily.
    sc.umount2(".", sc.MNT_DETACH, step=step)
    os.chdir("/")
