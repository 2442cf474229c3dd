"""Nothing set-uid in the layer store: an imported set-uid-root file lands without its bit,
an older store is fixed when it is opened (bits and file capabilities), the store is 0700,
and boxes on an image still run on every tier. Each test has a store of its own."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import tiers
from sandbox.config import HostConfig
from sandbox.images.oci import import_archive
from sandbox.images.setid import CAPABILITY_XATTR
from sandbox.images.store import LayerStore, tree_digest
from sandbox.launcher import Launcher
from sandbox.result import Status
from sandbox.spec import BoxSpec
from tests.privileged import hostile_util as hu
from tests.privileged.test_layerbuild import oci_archive

pytestmark = pytest.mark.privileged
NOBODY = 65534
LIMITS = dataclasses.replace(hu.TIGHT, cpu_time_s=5.0, wall_time_s=20.0)  # a microVM's boot
BUSYBOX = Path("/bin/busybox")
# struct vfs_cap_data, revision 2, effective, permitted = CAP_NET_RAW: what `setcap
# cap_net_raw+ep` writes (linux/capability.h).
CAP_NET_RAW_EP = (0x02000001).to_bytes(4, "little") + (1 << 13).to_bytes(4, "little") + bytes(12)


@pytest.fixture
def state() -> Iterator[Path]:
    """A store root as /var/lib/stockade is: 0755, so that only the store's own modes keep
    a local user out (mkdtemp's 0700 would do it for them)."""
    root = Path(tempfile.mkdtemp(prefix="stockade-setid-"))
    root.chmod(0o755)
    yield root / "state"
    shutil.rmtree(root)


def layer(entries: list[tuple[str, int, int, bytes | str]]) -> bytes:
    """A layer tar of (name, mode, uid, content or, for a str, a symlink's target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, mode, uid, data in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid = mode, uid, uid
            if isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def run_as_nobody(path: str) -> str:
    """What `path -u` prints when uid 65534 runs it outside any box, or why it could not."""
    try:
        done = subprocess.run(
            [path, "-u"], user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True,
            text=True, timeout=10, check=False,
        )  # fmt: skip
    except PermissionError:
        return "EACCES"
    return done.stdout.strip()


def test_an_imported_set_uid_id_lands_without_the_bit_and_out_of_reach(state: Path) -> None:
    """The issue's case: an image's set-uid-root `id`, imported, ran as root for uid 65534."""
    store = LayerStore(str(state))
    data = Path("/usr/bin/id").read_bytes()
    archive = oci_archive(str(state.parent / "id.tar"), [layer([("usr/bin/id", 0o4755, 0, data)])])
    image = import_archive(store, archive, name="suid", progress=lambda s: None)
    [top] = store.image_layers(image)
    installed = f"{top}/usr/bin/id"
    st = os.stat(installed)
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o755)
    assert os.stat(store.layers_dir).st_mode & 0o777 == 0o700
    assert os.stat(store.images_dir).st_mode & 0o777 == 0o700
    assert run_as_nobody(installed) == "EACCES"
    # Even with the store's directory opened up again, the file gives no one root.
    os.chmod(store.layers_dir, 0o755)
    assert run_as_nobody(installed) == str(NOBODY)


def test_an_older_store_is_fixed_when_a_launcher_opens_it(state: Path) -> None:
    """A layer as an older Stockade committed it, with a set-uid-root file and a file
    capability, and world-readable directories: the launcher fixes it before any box."""
    store = LayerStore(str(state))
    tree = store.new_tmp()
    os.makedirs(f"{tree}/usr/bin")
    shutil.copy(BUSYBOX, f"{tree}/usr/bin/ping")
    os.setxattr(f"{tree}/usr/bin/ping", CAPABILITY_XATTR, CAP_NET_RAW_EP)
    shutil.copy(BUSYBOX, f"{tree}/usr/bin/su")
    os.chmod(f"{tree}/usr/bin/su", 0o4755)
    digest, _, _ = tree_digest(tree)
    os.rename(tree, store.layer_dir(digest))
    Path(store.layer_dir(digest) + ".json").write_text(json.dumps({"digest": digest}))
    for path in (store.layers_dir, store.images_dir):
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o755)
    layer_dir = Path(store.layer_dir(digest))
    assert os.getxattr(layer_dir / "usr/bin/ping", CAPABILITY_XATTR) == CAP_NET_RAW_EP
    config = dataclasses.replace(HostConfig.from_env(), state_dir=str(state))
    with Launcher(config):
        pass
    assert CAPABILITY_XATTR not in os.listxattr(layer_dir / "usr/bin/ping")
    assert (layer_dir / "usr/bin/su").stat().st_mode & 0o7777 == 0o755
    assert store.layer_meta(digest)["setid"] == "stripped"
    assert os.stat(store.layers_dir).st_mode & 0o777 == 0o700


def microvm_artifacts_in(state: Path) -> None:
    """The host's prepared guest kernel and initramfs, hard-linked into this store's
    microvm/ (read only, never changed), so a microVM box on the test's image makes its
    layer disks here and not in the shared state dir."""
    shared = Path(HostConfig.from_env().state_dir) / "microvm"
    try:
        record = json.loads((shared / "prepared.json").read_text())
    except (OSError, ValueError):
        return
    root = state / "microvm"
    vmlinux = root / Path(record["vmlinux"]).relative_to(shared)
    vmlinux.parent.mkdir(parents=True, mode=0o755)
    for path in (root, *vmlinux.parents):
        if path.is_relative_to(root):
            path.chmod(0o755)
    os.link(record["vmlinux"], vmlinux)
    initramfs = root / Path(record["initramfs"]).name
    os.link(record["initramfs"], initramfs)
    record |= {"root": str(root), "vmlinux": str(vmlinux), "initramfs": str(initramfs)}
    (root / "prepared.json").write_text(json.dumps(record))
    if (shared / "accel.json").exists():
        shutil.copy(shared / "accel.json", root / "accel.json")


@pytest.fixture
def image_launcher(state: Path) -> Iterator[Launcher]:
    """A store holding one imported image: busybox as a set-uid-root /bin/busybox (/bin/sh
    a link to it). Its launcher serves all three tiers from it."""
    store = LayerStore(str(state))
    entries = [("bin/busybox", 0o4755, 0, BUSYBOX.read_bytes()), ("bin/sh", 0o777, 0, "busybox")]
    archive = oci_archive(str(state.parent / "bb.tar"), [layer(entries)])
    import_archive(store, archive, name="bb", progress=lambda s: None)
    microvm_artifacts_in(state)
    with Launcher(dataclasses.replace(HostConfig.from_env(), state_dir=str(state))) as lau:
        yield lau


@pytest.mark.parametrize("tier", ["container", "gvisor", "microvm"])
def test_boxes_on_an_image_still_run(image_launcher: Launcher, tier: str) -> None:
    """The store is 0700 and its files hold no set-id bit: boxes reach the layers through
    their mounts, not their uid."""
    if why := tiers.probe(tier, image_launcher.config):
        pytest.skip(f"the {tier} tier cannot run here: {why}")
    script = "busybox id -u; busybox stat -c %a /bin/busybox; echo hi > /box/f; busybox cat /box/f"
    box = BoxSpec(argv=("/bin/sh", "-c", script), rootfs="bb", tier=tier, limits=LIMITS)
    r = image_launcher.run(box)
    assert r.status is Status.OK, hu.describe(r)
    assert r.runtime.startswith(tier), r.runtime
    uid, mode, hi = r.stdout.decode().split()
    assert int(uid) >= image_launcher.config.first_uid and (mode, hi) == ("755", "hi")
