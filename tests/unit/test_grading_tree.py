"""Reading submissions: regular files only, never through a link, with caps; zips checked."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from worker.grading.tree import LIMITS, TreeError, digest, read_tree
from worker.jobs.archives import ArchiveLimits


def test_a_directory_gives_its_regular_files_only(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("a")
    (tmp_path / "sub" / "b.txt").write_text("b")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    secret = tmp_path.parent / f"{tmp_path.name}-secret"
    secret.write_text("host secret")
    os.symlink(secret, tmp_path / "link.txt")
    os.symlink("/etc", tmp_path / "etc")
    os.mkfifo(tmp_path / "fifo")
    try:
        assert read_tree(tmp_path) == {"a.py": b"a", "sub/b.txt": b"b"}
    finally:
        secret.unlink()


def test_a_zip_is_checked_like_every_archive(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("main.c", "int main(void) { return 0; }")
    good = tmp_path / "good.zip"
    good.write_bytes(buf.getvalue())
    assert read_tree(good) == {"main.c": b"int main(void) { return 0; }"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../escape.c", "x")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(buf.getvalue())
    with pytest.raises(TreeError, match=r"bad\.zip"):
        read_tree(bad)


def test_caps_and_missing(tmp_path: Path) -> None:
    with pytest.raises(TreeError, match="No such file"):
        read_tree(tmp_path / "none")
    (tmp_path / "big").write_bytes(b"x" * 2000)
    small = ArchiveLimits(max_files=LIMITS.max_files, max_total_bytes=1000)
    with pytest.raises(TreeError, match="more than the cap"):
        read_tree(tmp_path, small)
    many = ArchiveLimits(max_files=2, max_total_bytes=LIMITS.max_total_bytes)
    for i in range(3):
        (tmp_path / f"f{i}").write_text("")
    with pytest.raises(TreeError, match="more than 2 files"):
        read_tree(tmp_path, many)


def test_digest_depends_on_names_and_bytes() -> None:
    base = digest({"a": b"1", "b": b"2"})
    assert base == digest({"b": b"2", "a": b"1"})
    assert base != digest({"a": b"12", "b": b""})
    assert base != digest({"a": b"1", "c": b"2"})
