"""Reading files back out of a box: regular files only, no symlink followed, size capped."""

from __future__ import annotations

import os
import stat

MAX_TREE_FILES = 4096


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
    out: dict[str, bytes | str] = {}
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        return {path: f"{path}: not a plain absolute path"}
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open("/", flags)
        for part in parts:
            nfd = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except OSError as e:
        return {path: f"{path}: {e.strerror} (directories must be real, not symlinks)"}
    budget = [max_bytes]
    _walk(fd, "/" + "/".join(parts), out, budget)
    return out


def _walk(dir_fd: int, prefix: str, out: dict[str, bytes | str], budget: list[int]) -> None:
    try:
        entries = sorted(os.scandir(dir_fd), key=lambda e: e.name)
        for entry in entries:
            full = f"{prefix}/{entry.name}"
            if len(out) >= MAX_TREE_FILES:
                out[full] = f"{full}: more than {MAX_TREE_FILES} files"
                return
            if entry.is_dir(follow_symlinks=False):
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                try:
                    sub = os.open(entry.name, flags, dir_fd=dir_fd)
                except OSError as e:
                    out[full] = f"{full}: {e.strerror}"
                    continue
                _walk(sub, full, out, budget)
            elif not entry.is_file(follow_symlinks=False):
                out[full] = f"{full}: not a regular file"
            else:
                data = _read_at(dir_fd, entry.name, full, budget[0])
                if isinstance(data, bytes):
                    budget[0] -= len(data)
                out[full] = data
    finally:
        os.close(dir_fd)


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
