"""A setup box's root, on the host's side: the overlay over idmapped layers and the mounts C
makes in it, and the upper dir made a layer again afterwards (owners shifted back, the mount
points C had to make removed)."""

from __future__ import annotations

import os
import stat

from sandbox import syscalls as sc
from sandbox.images.build import overlay_options
from sandbox.images.idmap import idmapped_bind

# Host uids base .. base+65535 are the box's 0 .. 65535: far above any account's or box
# slot's uid, so a file the box leaves behind never belongs to anyone on the host.
SUBUID_BASE = 1 << 20
SUBUID_COUNT = 65536
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# Scratch the layer must not keep (apt's lists and downloads, /tmp, /run): tmpfs, owned by
# the box's root. /run also holds the read-only binds of local package indexes.
_SCRATCH = ("tmp", "var/tmp", "var/lib/apt/lists", "var/cache/apt", "run")
MIRROR_DIR = "/run/stockade-mirrors"
SOURCE_DIR = "/autograder/source"


def mount_root(
    lowers: list[str],
    tmp: str,
    files: tuple[tuple[str, bytes], ...],
    local_dirs: tuple[str, ...],
    userns: int,
) -> None:
    """C's side: tmp/merged made the box's root, the layers idmapped to the user namespace
    userns, scratch on tmpfs, files under SOURCE_DIR, local_dirs bound read-only."""
    merged = os.path.realpath(os.path.join(tmp, "merged"))
    mapped = []
    for i, lower in enumerate(lowers):
        target = os.path.join(tmp, f"lower{i}")
        os.mkdir(target, 0o700)
        idmapped_bind(lower, target, userns)
        mapped.append(target)
    upper, work = os.path.join(tmp, "upper"), os.path.join(tmp, "work")
    sc.mount("overlay", merged, "overlay", 0, overlay_options(mapped, upper, work))
    own = f"uid={SUBUID_BASE},gid={SUBUID_BASE}"
    flags = sc.MS_NOSUID | sc.MS_NODEV
    sc.mount("tmpfs", _mountpoint(merged, "dev", True), "tmpfs", sc.MS_NOSUID, f"mode=755,{own}")
    for dev in _DEVICES:
        open(f"{merged}/dev/{dev}", "w").close()
        sc.mount(f"/dev/{dev}", f"{merged}/dev/{dev}", None, sc.MS_BIND)
    for src, name in (("/proc/self/fd", "fd"), ("fd/0", "stdin"), ("fd/1", "stdout")):
        os.symlink(src, f"{merged}/dev/{name}")
    os.symlink("fd/2", f"{merged}/dev/stderr")
    for sub in ("shm", "pts"):
        os.mkdir(f"{merged}/dev/{sub}")
        os.chown(f"{merged}/dev/{sub}", SUBUID_BASE, SUBUID_BASE)
    os.symlink("pts/ptmx", f"{merged}/dev/ptmx")
    _mountpoint(merged, "proc", True)
    for sub in _SCRATCH:
        sc.mount("tmpfs", _mountpoint(merged, sub, True), "tmpfs", flags, f"mode=755,{own}")
    for sub in ("tmp", "var/tmp"):
        os.chmod(f"{merged}/{sub}", 0o1777)
    for sub in ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial"):
        os.makedirs(f"{merged}/{sub}")
    for sub in ("var/lib/apt/lists", "var/cache/apt"):
        _give_to_box(f"{merged}/{sub}")
    for i, d in enumerate(local_dirs):
        target = f"{merged}{MIRROR_DIR}/{i}"
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(d):
            os.mkdir(target)
        else:
            open(target, "w").close()
        sc.mount(d, target, None, sc.MS_BIND | sc.MS_REC)
        sc.mount(None, target, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | flags)
    for name in ("hosts", "resolv.conf"):
        target = _mountpoint(merged, f"etc/{name}", False)
        sc.mount(os.path.join(tmp, name), target, None, sc.MS_BIND)
        sc.mount(None, target, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)
    source = _mountpoint(merged, SOURCE_DIR.lstrip("/"), True)
    sc.mount("tmpfs", source, "tmpfs", flags, f"mode=755,{own}")
    for rel, content in files:
        parts = rel.split("/")
        if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"setup box: file {rel!r} is not a plain relative path")
        path = os.path.join(source, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, 0o755)
    _give_to_box(source)


def _give_to_box(top: str) -> None:
    """What C wrote on a scratch tmpfs belongs to the box's root, as if it had made it."""
    for dirpath, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(dirpath, name), SUBUID_BASE, SUBUID_BASE)


def _mountpoint(merged: str, rel: str, directory: bool) -> str:
    """merged/rel, made when missing (it lands in the upper dir; `drop_mountpoints` removes
    it again unless the script put something there). C resolves paths in the host's view,
    so a link in the image on the way (run -> /, say) is refused, never followed."""
    path = os.path.join(merged, rel)
    if not os.path.lexists(path):
        if directory:
            os.makedirs(path, 0o755)
        else:
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            open(path, "w").close()
    if os.path.realpath(path) != path:
        raise ValueError(f"setup box: /{rel} in the image is or passes through a link")
    return path


def shift_owners(upper: str) -> int:
    """Give the upper dir's entries their in-box owners (host uid SUBUID_BASE + n -> n).
    Entries overlayfs made itself (whiteouts, made with the mounter's credentials) are root's
    already. -> entries changed. Raises ValueError on an owner outside both."""
    changed = 0
    for dirpath, dirs, files in os.walk(upper):
        for name in ["", *dirs, *files] if dirpath == upper else [*dirs, *files]:
            path = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(path)
            uid, gid = _inside(st.st_uid, path), _inside(st.st_gid, path)
            if (uid, gid) != (st.st_uid, st.st_gid):
                os.lchown(path, uid, gid)  # clears set-id bits, which the store strips anyway
                changed += 1
    return changed


def drop_mountpoints(upper: str, lowers: list[str]) -> list[str]:
    """Remove the mount points C had to make (empty, and in no lower layer). -> removed."""
    removed = []
    points = ["dev", "proc", *_SCRATCH, "etc/hosts", "etc/resolv.conf", SOURCE_DIR[1:]]
    for rel in [*points, os.path.dirname(SOURCE_DIR[1:])]:
        path = os.path.join(upper, rel)
        if any(os.path.lexists(os.path.join(lo, rel)) for lo in lowers):
            continue
        st = os.lstat(path) if os.path.lexists(path) else None
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode) and not os.listdir(path):
            os.rmdir(path)
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(path)
        else:
            continue
        removed.append(rel)
    return removed


def _inside(host_id: int, path: str) -> int:
    if SUBUID_BASE <= host_id < SUBUID_BASE + SUBUID_COUNT:
        return host_id - SUBUID_BASE
    if host_id == 0:
        return 0
    raise ValueError(f"setup box: {path} is owned by host id {host_id}, outside the box's")
