"""OCI import without root: path checks, whiteout plans, no-follow extraction, caps, manifests."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest

from sandbox.images.oci import (
    Budget,
    _Source,
    extract_layer,
    image_manifest,
    image_name_from_tag,
    member_parts,
    whiteout_plan,
)
from sandbox.images.store import LayerError

Entry = tuple[str, str, bytes | str]  # (name, kind, data or link target)


def layer_tar(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(data, bytes)
                info.size, info.mode = len(data), 0o644
                tf.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[
                kind
            ]
            info.mode = 0o755
            info.linkname = str(data)
            tf.addfile(info)
    return buf.getvalue()


def extract(tmp: str, entries: list[Entry], budget: Budget | None = None) -> str:
    root = f"{tmp}/layer"
    os.makedirs(root, exist_ok=True)
    extract_layer(io.BytesIO(layer_tar(entries)), root, budget or Budget(1 << 20, 100))
    return root


def test_member_parts() -> None:
    assert member_parts("./usr//bin/./x") == ("usr", "bin", "x")
    assert member_parts("./") == ()
    for bad, why in (("../x", "'..'"), ("a/../../x", "'..'"), ("/etc/x", "absolute")):
        with pytest.raises(LayerError, match=why):
            member_parts(bad)


def test_whiteout_plan() -> None:
    assert whiteout_plan(("etc", ".wh.passwd")) == ("whiteout", ("etc", "passwd"))
    assert whiteout_plan(("usr", "share", ".wh..wh..opq")) == ("opaque", ("usr", "share"))
    assert whiteout_plan((".wh..wh.plnk",)) == ("skip", (".wh..wh.plnk",))
    assert whiteout_plan(("etc", "passwd")) is None
    assert whiteout_plan(("etc", ".wh.")) == ("skip", ("etc", ".wh."))


def test_plain_layer_is_unpacked(tmp_path: os.PathLike[str]) -> None:
    root = extract(
        str(tmp_path),
        [
            ("usr/bin/tool", "file", b"#!/bin/sh\n"),
            ("usr/lib/", "dir", ""),
            ("bin", "sym", "usr/bin"),
            ("usr/bin/tool2", "hard", "usr/bin/tool"),
            ("etc/abs", "sym", "/etc/passwd"),
        ],
    )
    with open(f"{root}/usr/bin/tool", "rb") as f:
        assert f.read() == b"#!/bin/sh\n"
    assert os.readlink(f"{root}/bin") == "usr/bin"
    assert os.readlink(f"{root}/etc/abs") == "/etc/passwd"  # stored, never followed
    assert os.stat(f"{root}/usr/bin/tool").st_ino == os.stat(f"{root}/usr/bin/tool2").st_ino


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("../escape", "file", b"x")], "escapes the layer"),
        ([("/etc/cron.d/x", "file", b"x")], "absolute path"),
        ([("up", "sym", "/"), ("up/etc/passwd", "file", b"x")], "refusing to follow"),
        ([("d", "sym", "../../.."), ("d/x", "dir", "")], "refusing to follow"),
        ([("link", "hard", "/etc/shadow")], "absolute path"),
        ([("link", "hard", "../../etc/shadow")], "escapes the layer"),
        ([("link", "hard", "not/extracted")], "extracted earlier in this layer"),
        ([("s", "sym", "/etc/shadow"), ("link", "hard", "s")], "extracted earlier"),
    ],
)
def test_hostile_layers_are_refused(
    tmp_path: os.PathLike[str], entries: list[Entry], message: str
) -> None:
    outside = f"{tmp_path}/outside"
    with pytest.raises(LayerError, match=message):
        extract(f"{tmp_path}/in/side", entries)
    assert not os.path.exists(outside) and not os.path.exists(f"{tmp_path}/escape")


def test_symlink_replaced_by_file_is_written_in_place(tmp_path: os.PathLike[str]) -> None:
    target = f"{tmp_path}/target"
    open(target, "w").close()
    root = extract(str(tmp_path), [("f", "sym", target), ("f", "file", b"new")])
    assert not os.path.islink(f"{root}/f") and os.path.getsize(target) == 0


def test_caps(tmp_path: os.PathLike[str]) -> None:
    many = [(f"f{i}", "file", b"") for i in range(20)]
    with pytest.raises(LayerError, match="more than 10 entries"):
        extract(f"{tmp_path}/a", many, Budget(1 << 20, 10))
    with pytest.raises(LayerError, match=r"more than 1\.0 KB unpacked"):
        extract(f"{tmp_path}/b", [("big", "file", b"x" * 4096)], Budget(1000, 10))


def test_image_names_from_tags() -> None:
    assert image_name_from_tag("docker.io/library/busybox:1.36") == "busybox-1.36"
    assert image_name_from_tag(None) is None
    assert image_name_from_tag("Foo/BAR:Latest") == "bar-latest"


def test_docker_save_manifest(tmp_path: os.PathLike[str]) -> None:
    path = f"{tmp_path}/img.tar"
    manifest = json.dumps([{"Config": "c.json", "RepoTags": ["t:1"], "Layers": ["a/layer.tar"]}])
    with tarfile.open(path, "w") as tf:
        for name, data in (("manifest.json", manifest.encode()), ("a/layer.tar", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    src = _Source(path)
    try:
        refs, tag = image_manifest(src)
    finally:
        src.close()
    assert [r.path for r in refs] == ["a/layer.tar"] and tag == "t:1"


def test_set_id_bits_are_not_extracted(tmp_path: os.PathLike[str]) -> None:
    """A set-uid file of an image would be set-uid in the host's store, where any local
    user could run it; a set-gid directory grants nothing and keeps its bit."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, mode, kind in (
            ("usr/bin/suid", 0o4755, tarfile.REGTYPE),
            ("usr/bin/sgid", 0o2711, tarfile.REGTYPE),
            ("usr/bin/both", 0o6555, tarfile.REGTYPE),
            ("var/mail", 0o2775, tarfile.DIRTYPE),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, mode
            tf.addfile(info, io.BytesIO(b""))
    root = f"{tmp_path}/layer"
    os.mkdir(root)
    extract_layer(io.BytesIO(buf.getvalue()), root, Budget(1 << 20, 100))
    modes = {n: os.lstat(f"{root}/{n}").st_mode & 0o7777 for n in ("usr/bin/suid", "var/mail")}
    modes |= {n: os.lstat(f"{root}/{n}").st_mode & 0o7777 for n in ("usr/bin/sgid", "usr/bin/both")}
    assert modes == {
        "usr/bin/suid": 0o755,
        "usr/bin/sgid": 0o711,
        "usr/bin/both": 0o555,
        "var/mail": 0o2775,
    }
