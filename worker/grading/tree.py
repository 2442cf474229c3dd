"""Reading a submission or an assignment (a directory or a zip) into memory, safely, with caps."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from worker.jobs.archives import ArchiveError, ArchiveLimits, extract_zip

LIMITS = ArchiveLimits(max_files=512, max_total_bytes=64 << 20, max_archive_bytes=32 << 20)
# Left out of a directory walk: version control and editor litter, never graded.
SKIPPED_DIRS = {".git", ".hg", ".svn", "__pycache__", ".pytest_cache"}


class TreeError(ValueError):
    """The directory or zip cannot be read; the message says which path and why."""


def read_tree(path: Path, limits: ArchiveLimits = LIMITS) -> dict[str, bytes]:
    """Every regular file by relative path. Symlinks and special files are left out (a
    student's zip or directory must not make the grader read /etc/shadow); a zip goes through
    the same checks as every archive the service takes."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise TreeError(f"{path}: {e.strerror}") from None
    if stat.S_ISREG(st.st_mode):
        if st.st_size > limits.max_archive_bytes:
            raise TreeError(f"{path}: over the {limits.max_archive_bytes}-byte cap for a zip")
        try:
            return extract_zip(path.read_bytes(), limits)
        except ArchiveError as e:
            raise TreeError(f"{path}: {e}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise TreeError(f"{path}: neither a directory nor a zip")
    return _walk(path, limits)


def _walk(root: Path, limits: ArchiveLimits) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    for here, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(names):
            full = os.path.join(here, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            content = _read_regular(full, limits.max_total_bytes - total)
            if content is None:
                continue
            total += len(content)
            files[rel] = content
            if len(files) > limits.max_files:
                raise TreeError(f"{root}: more than {limits.max_files} files")
    return files


def _read_regular(path: str, room: int) -> bytes | None:
    """The file's bytes, or None when it is not a regular file. O_NOFOLLOW and fstat on the
    open descriptor: a file swapped for a symlink after the walk saw it is still refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = f.read(room + 1)
    if len(data) > room:
        raise TreeError(f"{path}: the files total more than the cap")
    return data


def digest(files: dict[str, bytes]) -> str:
    """A content hash of a file tree: names and bytes, in a fixed order."""
    h = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        h.update(f"{len(name)}:{name}:{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()
