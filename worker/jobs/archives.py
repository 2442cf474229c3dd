"""Safe zip extraction for additional_files: no slip, no symlinks, no bombs; bytes, never disk."""

from __future__ import annotations

import base64
import binascii
import io
import posixpath
import stat
import zipfile
import zlib
from dataclasses import dataclass

_CHUNK = 1 << 16


class ArchiveError(ValueError):
    """The archive is refused; the message says which entry and why."""


@dataclass(frozen=True)
class ArchiveLimits:
    max_files: int = 256
    max_total_bytes: int = 32 << 20  # uncompressed, counted while reading
    max_archive_bytes: int = 8 << 20  # the zip itself
    max_ratio: int = 100  # uncompressed : compressed, per entry
    max_name_bytes: int = 255


def decode_base64(text: str, limits: ArchiveLimits = ArchiveLimits()) -> bytes:
    if len(text) > limits.max_archive_bytes * 4 // 3 + 4:
        raise ArchiveError(f"archive: over the {limits.max_archive_bytes}-byte cap")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ArchiveError("archive: not valid base64") from None


def extract_zip(data: bytes, limits: ArchiveLimits = ArchiveLimits()) -> dict[str, bytes]:
    """Every regular file of the zip, by its normalised relative path. Nothing is written to
    disk and no header is trusted: sizes are counted while decompressing, so a lying header
    cannot get past the caps."""
    if len(data) > limits.max_archive_bytes:
        raise ArchiveError(f"archive: over the {limits.max_archive_bytes}-byte cap")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as e:
        raise ArchiveError(f"archive: not a zip file ({e})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_files:
            raise ArchiveError(f"archive: {len(infos)} entries, the cap is {limits.max_files}")
        files: dict[str, bytes] = {}
        budget = limits.max_total_bytes
        for info in infos:
            path = _check_entry(info, limits)
            if path is None:
                continue  # a directory: parents are made when files are placed
            if path in files:
                raise ArchiveError(f"{info.filename}: appears twice")
            content = _read_capped(zf, info, budget, limits)
            budget -= len(content)
            files[path] = content
    _check_tree(files)
    return files


def _check_entry(info: zipfile.ZipInfo, limits: ArchiveLimits) -> str | None:
    name = info.filename
    if len(name.encode()) > limits.max_name_bytes or not name:
        raise ArchiveError(f"{name[:60]!r}: name empty or too long")
    if "\0" in name or "\\" in name:
        raise ArchiveError(f"{name!r}: NUL or backslash in the name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"{name}: absolute path (zip slip)")
    if ".." in name.split("/"):
        raise ArchiveError(f"{name}: '..' in the path (zip slip)")
    mode = info.external_attr >> 16
    # Unix attributes carry the file type; none (0) means a plain file. A link is refused
    # whatever system the header claims made it.
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"{name}: a symbolic link")
    regular = stat.S_ISREG(mode) or stat.S_ISDIR(mode)
    if info.create_system == 3 and stat.S_IFMT(mode) and not regular:
        raise ArchiveError(f"{name}: not a regular file or directory")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"{name}: encrypted")
    if name.endswith("/"):
        return None
    path = posixpath.normpath(name)
    if path in (".", "") or path.startswith("../"):
        raise ArchiveError(f"{name}: not a path inside the archive")
    return path


def _read_capped(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int, limits: ArchiveLimits
) -> bytes:
    """Decompress in chunks, stopping at the total budget or the ratio cap, whatever the
    header claims (zipfile checks the CRC at the end, never the size first)."""
    ratio_cap = max(info.compress_size, 1) * limits.max_ratio + _CHUNK
    chunks: list[bytes] = []
    total = 0
    try:
        with zf.open(info) as f:
            while True:
                chunk = f.read(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > budget:
                    raise ArchiveError(
                        f"{info.filename}: over the {limits.max_total_bytes}-byte total "
                        "uncompressed cap (zip bomb?)"
                    )
                if total > ratio_cap:
                    raise ArchiveError(
                        f"{info.filename}: compressed more than {limits.max_ratio}:1 (zip bomb?)"
                    )
                chunks.append(chunk)
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        NotImplementedError,
        RuntimeError,
        ValueError,
        zlib.error,
    ) as e:
        raise ArchiveError(f"{info.filename}: cannot be read ({e})") from None
    return b"".join(chunks)


def _check_tree(files: dict[str, bytes]) -> None:
    """A file may not also be a directory of another entry ('a' and 'a/b')."""
    for path in files:
        parent = posixpath.dirname(path)
        while parent:
            if parent in files:
                raise ArchiveError(f"{path}: its directory {parent} is also a file")
            parent = posixpath.dirname(parent)
