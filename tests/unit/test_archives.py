"""Zip extraction for additional_files: slip, symlinks, bombs and lying headers refused."""

from __future__ import annotations

import base64
import io
import stat
import zipfile

import pytest

from worker.jobs.archives import ArchiveError, ArchiveLimits, decode_base64, extract_zip


def _zip(entries: list[tuple[str, bytes, int | None]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            if mode is not None:
                info.create_system = 3
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


def test_regular_files_and_directories() -> None:
    data = _zip([("a.txt", b"A", None), ("d/", b"", stat.S_IFDIR | 0o755), ("d/b", b"B", None)])
    assert extract_zip(data) == {"a.txt": b"A", "d/b": b"B"}


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/etc/passwd", "C:/x", "a\\..\\b"])
def test_zip_slip_is_refused(name: str) -> None:
    with pytest.raises(ArchiveError):
        extract_zip(_zip([(name, b"x", None)]))


def test_symlink_entry_is_refused() -> None:
    with pytest.raises(ArchiveError, match="symbolic link"):
        extract_zip(_zip([("link", b"/etc/passwd", stat.S_IFLNK | 0o777)]))


def test_fifo_entry_is_refused() -> None:
    with pytest.raises(ArchiveError, match="not a regular file"):
        extract_zip(_zip([("fifo", b"", stat.S_IFIFO | 0o644)]))


def test_bomb_by_ratio_is_refused() -> None:
    with pytest.raises(ArchiveError, match="zip bomb"):
        extract_zip(_zip([("zeros", b"\0" * (8 << 20), None)]))


def test_total_size_cap_counts_real_bytes() -> None:
    limits = ArchiveLimits(max_total_bytes=100_000, max_ratio=10_000)
    data = _zip([("a", b"a" * 60_000, None), ("b", b"b" * 60_000, None)])
    with pytest.raises(ArchiveError, match="total"):
        extract_zip(data, limits)


def test_lying_header_size_does_not_help() -> None:
    """Headers that claim a tiny file: the real bytes are counted and the cap still holds."""
    data = bytearray(_zip([("big", b"x" * 200_000, None)], zipfile.ZIP_STORED))
    # Patch the central directory's uncompressed size (offset 24 in the record) to 10.
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    lh = data.find(b"PK\x03\x04")
    data[lh + 22 : lh + 26] = (10).to_bytes(4, "little")
    with pytest.raises(ArchiveError):
        extract_zip(bytes(data), ArchiveLimits(max_total_bytes=100_000))


def test_file_count_cap() -> None:
    data = _zip([(f"f{i}", b"", None) for i in range(5)])
    with pytest.raises(ArchiveError, match="entries"):
        extract_zip(data, ArchiveLimits(max_files=4))


def test_duplicates_and_file_directory_clashes_are_refused() -> None:
    with pytest.raises(ArchiveError, match="twice"):
        extract_zip(_zip([("a", b"1", None), ("./a", b"2", None)]))
    with pytest.raises(ArchiveError, match="also a file"):
        extract_zip(_zip([("a", b"1", None), ("a/b", b"2", None)]))


def test_not_a_zip_and_bad_base64() -> None:
    with pytest.raises(ArchiveError, match="not a zip"):
        extract_zip(b"hello")
    with pytest.raises(ArchiveError, match="base64"):
        decode_base64("%%%")
    assert decode_base64(base64.b64encode(b"zz").decode()) == b"zz"
