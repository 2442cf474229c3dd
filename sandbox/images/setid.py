"""Nothing set-id in a layer: set-uid and set-gid bits and file capabilities are stripped from
every file of a tree, without following a link.

The layer store lives on the host, and a set-uid-root file in it runs as root for whoever
can reach it, outside any box (an imported set-uid `id` did, for uid 65534). Boxes never need
the bits: every box mount is nosuid and every box process has no_new_privs, so the bits
only ever served a local user on the host. File capabilities (the security.capability
xattr, capabilities(7) "File capabilities", written by setcap in Debian's postinst scripts
for ping and the like) grant privileges the same way and go too. A set-gid directory only
sets the group of entries made in it, grants nothing on exec, and is left as it is.
"""

from __future__ import annotations

import errno
import os
import stat

SETID = stat.S_ISUID | stat.S_ISGID
CAPABILITY_XATTR = "security.capability"
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def safe_mode(mode: int) -> int:
    """Pure: the permission bits a file of this mode keeps in a layer (directories keep all)."""
    return mode & 0o7777 if stat.S_ISDIR(mode) else mode & 0o7777 & ~SETID


def strip_tree(root: str) -> list[str]:
    """Strip set-id bits and file capabilities from every regular file below root; -> the
    paths changed, relative to root. A file that goes while the walk runs is skipped."""
    changed: list[str] = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                if _strip_file(path):
                    changed.append(os.path.relpath(path, root))
            except FileNotFoundError:
                continue
    return changed


def _strip_file(path: str) -> bool:
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        return False  # symlinks, whiteouts (char 0/0): no bits that mean anything
    has_cap = _has_capability(path)
    if not (st.st_mode & SETID or has_cap):
        return False
    # Opened without following a link and checked again: only this regular file is changed.
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        if has_cap:
            try:
                os.removexattr(fd, CAPABILITY_XATTR)
            except OSError as e:
                if e.errno != errno.ENODATA:
                    raise
        os.fchmod(fd, safe_mode(st.st_mode))
    finally:
        os.close(fd)
    return True


def _has_capability(path: str) -> bool:
    try:
        os.getxattr(path, CAPABILITY_XATTR, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP):
            return False
        raise
    return True
