"""Reading files back out of a box: regular files only, no symlink followed, size capped."""

from __future__ import annotations

import os
import stat


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
        try:
            ffd = os.open(
                parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd
            )
        except OSError as e:
            return f"{path}: {e.strerror}"
    finally:
        os.close(fd)
    try:
        st = os.fstat(ffd)
        if not stat.S_ISREG(st.st_mode):
            return f"{path}: not a regular file"
        if st.st_size > max_bytes:
            return f"{path}: {st.st_size} bytes is over the {max_bytes}-byte cap"
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(ffd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                return f"{path}: grew over the {max_bytes}-byte cap while read"
        return b"".join(chunks)
    finally:
        os.close(ffd)
