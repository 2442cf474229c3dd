"""Layer store on the real kernel: Debian builds into the real cache, OCI import, refusals, gc.

The builds go into the real state dir (STOCKADE_STATE_DIR or /var/lib/stockade), so the first
run takes a couple of minutes and later runs reuse the cached layers in seconds. Everything
else uses a temporary store. Images are checked by stacking their layers in an overlay in
the private mount namespace of a forked child, never through the box.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest

from sandbox import syscalls as sc
from sandbox.images.build import build_images, load_recipes
from sandbox.images.oci import import_archive
from sandbox.images.store import LayerError, LayerStore

pytestmark = pytest.mark.privileged
BUILT = ["debian", "python3", "gcc", "java"]
Entry = tuple[str, str, bytes | str]  # (name, kind, data or link target)


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split(" - ")[0].split(" ", 4)[4] for line in f}


@pytest.fixture(autouse=True)
def no_leaked_mounts() -> Iterator[None]:
    before = _mounts()
    yield
    assert _mounts() - before == set()


@pytest.fixture
def tmp_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="stockade-layertest-")
    yield path
    shutil.rmtree(path)


def in_private_ns(fn: Callable[[], bytes]) -> bytes:
    """Run fn in a forked child in a private mount namespace; its mounts die with it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
            os.write(w, fn())
            code = 0
        except BaseException as e:
            os.write(w, f"child failed: {e!r}".encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out.decode(errors="replace")
    return out


def stack(layers: list[str], at: str) -> None:
    """A read-only overlay of layers (top first) at `at`; more than one lower, no upper."""
    if len(layers) == 1:
        layers = [*layers, tempfile.mkdtemp(dir=os.path.dirname(at))]
    sc.mount("overlay", at, "overlay", sc.MS_RDONLY, f"lowerdir={':'.join(layers)}")


def run_in_image(layers: list[str], root: str, script: str) -> bytes:
    def child() -> bytes:
        stack(layers, root)
        for sub, fs in (("proc", "proc"), ("tmp", "tmpfs"), ("dev", "tmpfs")):
            sc.mount(fs, f"{root}/{sub}", fs, sc.MS_NOSUID | sc.MS_NODEV)
        open(f"{root}/dev/null", "w").close()
        sc.mount("/dev/null", f"{root}/dev/null", None, sc.MS_BIND)
        os.chroot(root)
        os.chdir("/tmp")
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
        done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, env=env, timeout=60)
        return done.stdout + done.stderr

    return in_private_ns(child)


@pytest.fixture(scope="module")
def store() -> LayerStore:
    if shutil.which("debootstrap", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        pytest.skip("needs debootstrap (apt-get install debootstrap)")
    real = LayerStore()
    start = time.monotonic()
    outcome = build_images(real, load_recipes(), BUILT, lambda s: print(s, file=sys.stderr))
    print(f"layers {outcome} in {time.monotonic() - start:.1f}s", file=sys.stderr)
    return real


@pytest.mark.timeout(900)
def test_build_base_and_languages(store: LayerStore) -> None:
    assert set(BUILT) <= set(store.images())
    base = store.image_layers("debian")
    assert len(base) == 1
    for name in BUILT[1:]:
        layers = store.image_layers(name)
        assert layers[1:] == base and len(layers) == 2
        meta = store.layer_meta(os.path.basename(layers[0]))
        assert meta["parent"] == os.path.basename(base[0]) and meta["name"] == name
    again = build_images(store, load_recipes(), BUILT, lambda s: None)
    assert set(again.values()) == {"cached"}
    junk = ("var/lib/apt/lists/*_*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb")
    for d in [base[0], *(store.image_layers(n)[0] for n in BUILT[1:])]:
        assert [p for pattern in junk for p in glob.glob(f"{d}/{pattern}")] == []


@pytest.mark.timeout(900)
def test_images_run(store: LayerStore, tmp_dir: str) -> None:
    root = f"{tmp_dir}/root"
    os.mkdir(root)
    assert run_in_image(store.image_layers("python3"), root, "python3 -c 'print(1)'") == b"1\n"
    c = "printf '#include <stdio.h>\\nint main(){puts(\"ok\");}' > a.c && gcc a.c -o a && ./a"
    assert run_in_image(store.image_layers("gcc"), root, c) == b"ok\n"
    out = run_in_image(store.image_layers("java"), root, "javac -version 2>&1")
    assert out.startswith(b"javac 17"), out
    out = run_in_image(store.image_layers("debian"), root, "command -v python3 gcc; echo end")
    assert out == b"end\n"


def layer_tar(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if kind == "file":
                assert isinstance(data, bytes)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[
                kind
            ]
            info.mode, info.linkname = 0o755, str(data)
            tf.addfile(info)
    return buf.getvalue()


def oci_archive(path: str, layers: list[bytes], tag: str = "demo:1") -> str:
    """An OCI image layout tarball holding layers (bottom first)."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes, media: str) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media, "digest": f"sha256:{digest}", "size": len(data)}

    config = blob(
        b'{"architecture":"amd64","os":"linux"}', "application/vnd.oci.image.config.v1+json"
    )
    descs = [blob(data, "application/vnd.oci.image.layer.v1.tar+gzip") for data in layers]
    manifest = {"schemaVersion": 2, "config": config, "layers": descs}
    mdesc = blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    mdesc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    files = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": json.dumps({"schemaVersion": 2, "manifests": [mdesc]}).encode(),
        **{f"blobs/sha256/{d}": data for d, data in blobs.items()},
    }
    with tarfile.open(path, "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_oci_import_whiteouts_and_opaque(tmp_dir: str) -> None:
    store = LayerStore(f"{tmp_dir}/state")
    lower = layer_tar(
        [
            ("etc/keep", "file", b"keep"),
            ("etc/gone", "file", b"gone"),
            ("opq/a", "file", b"a"),
            ("opq/sub/b", "file", b"b"),
            ("bin", "sym", "usr/bin"),
        ]
    )
    upper = gzip.compress(
        layer_tar(
            [
                ("etc/.wh.gone", "file", b""),
                ("opq/.wh..wh..opq", "file", b""),
                ("opq/c", "file", b"c"),
            ]
        )
    )
    archive = oci_archive(f"{tmp_dir}/img.tar", [lower, upper])
    name = import_archive(store, archive, progress=lambda s: None)
    assert name == "demo-1" and store.images() == ["demo-1"]
    layers = store.image_layers("demo-1")
    assert len(layers) == 2
    st = os.lstat(f"{layers[0]}/etc/gone")
    assert (st.st_mode & 0o170000, st.st_rdev) == (0o020000, 0)  # char device 0/0
    assert os.getxattr(f"{layers[0]}/opq", "trusted.overlay.opaque") == b"y"
    root = f"{tmp_dir}/root"
    os.mkdir(root)

    def view() -> bytes:
        stack(layers, root)
        tree = {d: sorted(os.listdir(f"{root}/{d}")) for d in ("etc", "opq")}
        return json.dumps({**tree, "bin": os.readlink(f"{root}/bin")}).encode()

    merged = json.loads(in_private_ns(view))
    assert merged == {"etc": ["keep"], "opq": ["c"], "bin": "usr/bin"}


@pytest.mark.parametrize(
    ("entries", "caps", "message"),
    [
        ([("../escape", "file", b"x")], {}, "escapes the layer"),
        ([("/etc/evil", "file", b"x")], {}, "absolute path"),
        ([("up", "sym", "/"), ("up/tmp/evil", "file", b"x")], {}, "refusing to follow"),
        ([("h", "hard", "/etc/passwd")], {}, "absolute path"),
        ([("h", "hard", "../../../etc/passwd")], {}, "escapes the layer"),
        ([(f"f{i}", "file", b"") for i in range(50)], {"max_files": 20}, "more than 20 entries"),
        ([("big", "file", b"x" * 100_000)], {"max_bytes": 10_000}, "unpacked"),
    ],
)
def test_hostile_archives_are_refused(
    tmp_dir: str, entries: list[Entry], caps: dict[str, int], message: str
) -> None:
    store = LayerStore(f"{tmp_dir}/state")
    archive = oci_archive(f"{tmp_dir}/bad.tar", [layer_tar(entries)])
    with pytest.raises(LayerError, match=message):
        import_archive(store, archive, progress=lambda s: None, **caps)  # type: ignore[arg-type]
    assert store.images() == [] and os.listdir(store.layers_dir) == []
    assert not os.path.exists("/tmp/evil") and not os.path.exists("/etc/evil")


def test_gc_removes_only_unreferenced_layers(tmp_dir: str) -> None:
    store = LayerStore(f"{tmp_dir}/state")
    shared = layer_tar([("usr/shared", "file", b"s")])
    a = import_archive(
        store, oci_archive(f"{tmp_dir}/a.tar", [shared, layer_tar([("a", "file", b"a")])], "a"),
        progress=lambda s: None,
    )  # fmt: skip
    b = import_archive(
        store, oci_archive(f"{tmp_dir}/b.tar", [shared, layer_tar([("b", "file", b"b")])], "b"),
        progress=lambda s: None,
    )  # fmt: skip
    la, lb = store.image_layers(a), store.image_layers(b)
    assert la[1] == lb[1]  # the same content is one layer
    os.mkdir(f"{store.layers_dir}/.tmp-crashed")
    with store.locked():
        assert store.gc().layers == []
    store.rm_image(b)
    with store.locked():
        plan = store.gc()
    assert plan.layers == [os.path.basename(lb[0])]
    assert not os.path.exists(lb[0]) and all(os.path.isdir(d) for d in la)
    assert store.image_layers(a) == la and store.images() == [a]
