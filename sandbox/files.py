"""Reading files back out of a box: regular files only, no symlink followed, size capped."""

from __future__ import annotations

import os
import stat

MAX_TREE_FILES = 4096
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# <linux/limits.h>: no one could open a longer path out of the result, and a deep chain of
# long names would otherwise make every key below it longer still.
PATH_MAX = 4096


def read_regular_beneath(path: str, max_bytes: int) -> bytes | str:
    """The file's bytes, or a sentence saying why it was refused. Every component is opened
    with O_NOFOLLOW relative to its parent's fd, so a symlink anywhere on the path (Judge0's
    CVE-2024-28185 and CVE-2024-28189) is refused rather than followed."""
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        return f"{path}: not a plain absolute path"
    dir_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open("/", dir_flags)
    try:
        for part in parts[:-1]:
            try:
                nfd = os.open(part, dir_flags, dir_fd=fd)
            except OSError as e:
                return f"{path}: {part}: {e.strerror} (directories must be real, not symlinks)"
            os.close(fd)
            fd = nfd
        return _read_at(fd, parts[-1], path, max_bytes)
    finally:
        os.close(fd)


def read_tree_beneath(path: str, max_bytes: int) -> dict[str, bytes | str]:
    """Every regular file under the directory `path`, keyed by its path, or for each entry
    refused (a symlink, a device, a FIFO, past the caps) the reason. Directories are
    entered with O_NOFOLLOW relative to their parent's fd, like read_regular_beneath."""
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        return {path: f"{path}: not a plain absolute path"}
    try:
        fd = os.open("/", _DIR_FLAGS)
        for part in parts:
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            finally:
                os.close(fd)
            fd = nfd
    except OSError as e:
        return {path: f"{path}: {e.strerror} (directories must be real, not symlinks)"}
    out: dict[str, bytes | str] = {}
    _walk(fd, "/" + "/".join(parts), out, max_bytes)
    return out


class _Dir:
    """A directory being walked: its path, its identity and the entries still to visit."""

    def __init__(self, path: str, fd: int) -> None:
        st = os.fstat(fd)
        self.path = path
        self.ident = (st.st_dev, st.st_ino)
        with os.scandir(fd) as it:
            found = [(e.name, e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False))
                     for e in it]  # fmt: skip
        self.pending = sorted(found, reverse=True)  # pop() takes them in name order


def _walk(fd: int, top: str, out: dict[str, bytes | str], budget: int) -> None:
    """Depth first, holding one directory fd whatever the depth: a tree deeper than the
    box's RLIMIT_NOFILE (which init runs under) or Python's recursion limit is read like
    any other. A parent is reopened through ".." and must be the directory it was (device
    and inode); if not, something moved the tree, and the walk stops there, saying so."""
    try:
        try:
            stack = [_Dir(top, fd)]
        except OSError as e:
            out[top] = f"{top}: {e.strerror}"
            return
        while stack:
            cur = stack[-1]
            if not cur.pending:
                stack.pop()
                if stack:
                    fd = _up(fd, stack[-1], out)
                    if fd < 0:
                        return
                continue
            name, is_dir, is_file = cur.pending.pop()
            full = f"{cur.path}/{name}"
            if len(out) >= MAX_TREE_FILES:
                out[full] = f"{full}: more than {MAX_TREE_FILES} files"
                return
            if is_dir:
                sub = _down(fd, name, full, out)
                if sub is not None:
                    os.close(fd)
                    fd = sub[0]
                    stack.append(sub[1])
            elif not is_file:
                out[full] = f"{full}: not a regular file"
            else:
                data = _read_at(fd, name, full, budget)
                if isinstance(data, bytes):
                    budget -= len(data)
                out[full] = data
    finally:
        if fd >= 0:  # _up closed it and found no way back up
            os.close(fd)


def _down(fd: int, name: str, full: str, out: dict[str, bytes | str]) -> tuple[int, _Dir] | None:
    if len(full) >= PATH_MAX:
        out[full[:PATH_MAX]] = f"{full[:PATH_MAX]}...: path longer than {PATH_MAX} bytes"
        return None
    try:
        sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
    except OSError as e:
        out[full] = f"{full}: {e.strerror}"
        return None
    try:
        return sub, _Dir(full, sub)
    except OSError as e:
        os.close(sub)
        out[full] = f"{full}: {e.strerror}"
        return None


def _up(fd: int, parent: _Dir, out: dict[str, bytes | str]) -> int:
    """The parent's fd in place of fd (closed), or -1 with the reason recorded."""
    try:
        up = os.open("..", _DIR_FLAGS, dir_fd=fd)
    except OSError as e:
        up, why = -1, e.strerror
    else:
        st = os.fstat(up)
        why = "" if (st.st_dev, st.st_ino) == parent.ident else "moved while it was read"
        if why:
            os.close(up)
            up = -1
    os.close(fd)
    if up < 0:
        out[parent.path] = f"{parent.path}: {why}; the rest of it is not collected"
    return up


def _read_at(dir_fd: int, name: str, full: str, max_bytes: int) -> bytes | str:
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError as e:
        return f"{full}: {e.strerror}"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return f"{full}: not a regular file"
        if st.st_size > max_bytes:
            return f"{full}: {st.st_size} bytes is over the {max_bytes}-byte cap"
        # Read to the end (nothing in the box runs now, but trust no size), a chunk at a
        # time: one read sized by the cap would allocate the whole cap for every small file.
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(1 << 20, max_bytes + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                return f"{full}: grew over the {max_bytes}-byte cap while read"
        return b"".join(chunks)
    finally:
        os.close(fd)
