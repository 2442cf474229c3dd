"""Idmapped bind mounts (mount_setattr(2) MOUNT_ATTR_IDMAP): a tree seen with shifted owners."""

from __future__ import annotations

import ctypes
import os

from sandbox import syscalls as sc

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
# x86_64 syscall numbers and <linux/mount.h> flags (open_tree(2), move_mount(2))
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT = 428, 429
_OPEN_TREE_CLONE = 1
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_AT_EMPTY_PATH = 0x1000
_MOUNT_ATTR_IDMAP = 0x00100000


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(ret: int, call: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise sc.errno_error("setup box", call, OSError(err, os.strerror(err)))
    return ret


def idmapped_bind(src: str, dst: str, userns_fd: int) -> None:
    """Bind src at dst so that an owner uid u on disk reads as what u maps to in the user
    namespace userns_fd, and a file created through it by that uid is stored as u. The tree
    is detached (open_tree OPEN_TREE_CLONE) so the idmap never touches src's own mount."""
    fd = _check(
        _libc.syscall(_SYS_OPEN_TREE, sc.AT_FDCWD, src.encode(), _OPEN_TREE_CLONE | os.O_CLOEXEC),
        f"open_tree({src})",
    )
    try:
        attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        _check(
            _libc.syscall(
                sc.SYS_mount_setattr, fd, b"", _AT_EMPTY_PATH, ctypes.byref(attr),
                ctypes.sizeof(attr),
            ),
            f"mount_setattr({src}, MOUNT_ATTR_IDMAP)",
        )  # fmt: skip
        _check(
            _libc.syscall(
                _SYS_MOVE_MOUNT, fd, b"", sc.AT_FDCWD, dst.encode(), _MOVE_MOUNT_F_EMPTY_PATH
            ),
            f"move_mount({src} -> {dst})",
        )
    finally:
        os.close(fd)
