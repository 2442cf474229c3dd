"""The guest agent against hostile images, on real VMs: an image of as many layers as a microVM
attaches (the overlay's options outgrew a fixed buffer), one of more is refused before a
boot, and a symlink planted in a layer where the agent makes the box's directories or writes
its files is never followed (the agent is root and not chrooted while it builds the root)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import cgroups
from sandbox.backends.microvm.backend import MicrovmBackend
from sandbox.backends.microvm.disks import FSTYPE, layer_digest
from sandbox.backends.microvm.qemu_plan import MAX_DISKS
from sandbox.config import HostConfig
from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec, FileIn
from sandbox.stdio import Stdio
from tests.privileged import hostile_util as hu
from tests.privileged.test_tier_microvm import HELD, LIM, leftovers, nothing_left, usable

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
__all__ = ["nothing_left"]
BUSYBOX = "/bin/busybox"
# What the program reports: how many layers it sees, and /etc as the image made it (mode and
# entries): a symlink the agent followed to /root/etc (the box's own /etc, seen from the
# agent) shows there as a chmod, a chown, a mount or a file the image never had.
REPORT = "ls /seen | wc -l; stat -c '%a %u' /etc; ls /etc"
PLANTED = "/root/etc"


class Images:
    """Test images by name: lists of layer directories, top-most first."""

    def __init__(self) -> None:
        self.layers: dict[str, list[str]] = {}

    def images(self) -> list[str]:
        return list(self.layers)

    def image_layers(self, image: str) -> list[str]:
        return self.layers[image]


def _layer(root: Path, tag: str, make: dict[str, bytes | str | None]) -> str:
    """A layer directory named like the store's (a digest): path -> bytes (a file), str (a
    symlink's target) or None (a directory)."""
    digest = hashlib.sha256(repr(sorted(make.items())).encode() + tag.encode()).hexdigest()
    d = root / digest
    if d.exists():
        return str(d)
    d.mkdir()
    for path, what in make.items():
        p = d / path
        p.parent.mkdir(parents=True, exist_ok=True)
        if what is None:
            p.mkdir(exist_ok=True)
        elif isinstance(what, str):
            p.symlink_to(what)
        else:
            p.write_bytes(what)
            p.chmod(0o755)
    return str(d)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    """`many`: the most layers a microVM attaches (a busybox base and one marker file each);
    `toomany`: one more; `planted-<path>`: a few layers under one whose <path> is a symlink
    to /root/etc."""
    if not os.path.exists(BUSYBOX):
        pytest.skip(f"{BUSYBOX} is missing (Debian busybox-static): the test images' only program")
    root = tmp_path_factory.mktemp("layers")
    busybox = Path(BUSYBOX).read_bytes()
    base = _layer(root, "base", {"bin/busybox": busybox, "etc/marker": b"image\n"})
    seen = [_layer(root, f"seen{i}", {f"seen/{i}": b"%d\n" % i}) for i in range(MAX_DISKS)]
    imgs = Images()
    imgs.layers["many"] = [*seen[: MAX_DISKS - 1], base]
    imgs.layers["toomany"] = [*seen, base]
    for path in PLANTS:
        top = _layer(root, "plant", {path: PLANTED})
        imgs.layers[_image(path)] = [top, *seen[:2], base]
    return imgs


def _image(planted: str) -> str:
    return "planted-" + planted.replace("/", "-")


@pytest.fixture(scope="module")
def vm(images: Images) -> Iterator[MicrovmBackend]:
    config = HostConfig.from_env()
    usable(config)
    backend = MicrovmBackend(config, images, cgroups.probe(), pool=0)
    HELD.append(backend)
    try:
        yield backend
    finally:
        HELD.remove(backend)
        backend.close()
        # The layer disks made for these test layers, not the store's.
        for layers in images.layers.values():
            for layer in layers:
                disk = Path(backend.artifacts.disk_dir) / f"{layer_digest(layer)}.{FSTYPE}"
                disk.unlink(missing_ok=True)
    assert not leftovers(HELD), leftovers(HELD)


def run(vm: MicrovmBackend, image: str, *files: FileIn) -> BoxResult:
    spec = BoxSpec(
        argv=(BUSYBOX, "sh", "-c", REPORT), limits=LIM, rootfs=image, tier="microvm", files=files
    )
    return vm.run(spec, Stdio())


def test_an_image_of_as_many_layers_as_a_vm_attaches(vm: MicrovmBackend) -> None:
    """MAX_DISKS layers (and files in new directories): the overlay's lowerdir= outgrew the
    agent's fixed 256-byte options buffer past 19 layers, and the mount failed on the
    truncated string."""
    r = run(vm, "many", FileIn("deep/er/file", b"x"))
    assert r.status is Status.OK, hu.describe(r)
    assert r.stdout.split(b"\n")[:3] == [b"%d" % (MAX_DISKS - 1), b"755 0", b"marker"]


def test_more_layers_than_a_vm_attaches_are_refused_before_a_boot(vm: MicrovmBackend) -> None:
    r = run(vm, "toomany")
    assert r.status is Status.XX, hu.describe(r)
    assert r.message == (
        f"microvm: rootfs: attach layer disks: image 'toomany' has {MAX_DISKS + 1} layers; "
        f"a microVM attaches at most {MAX_DISKS}, one disk each (flatten the image)"
    )


# Where the agent made directories (mkdir, chown, chmod), mounted (proc, the /dev tmpfs) or
# wrote the job's files through a path the image controls.
PLANTS = ("box", "tmp", "proc", "dev", "box/sub")


@pytest.mark.parametrize("planted", PLANTS)
def test_a_symlink_planted_in_a_layer_is_never_followed(vm: MicrovmBackend, planted: str) -> None:
    """Before the fix the agent followed each of them to the box's own /etc: /tmp made it
    1777, /box gave it to the box's uid, /dev mounted a tmpfs over it, /box/sub put the
    job's file in it. Now the box is refused, naming the path, and nothing is followed."""
    r = run(vm, _image(planted), FileIn("sub/f", b"sent"))
    assert r.status is Status.XX, hu.describe(r)
    assert f"/{planted}" in r.message and "a symlink in the image (not followed)" in r.message, (
        r.message
    )
    assert r.message.startswith("guest agent: "), r.message


def test_the_planted_images_really_hold_their_symlinks(images: Images) -> None:
    for planted in PLANTS:
        top = Path(images.layers[_image(planted)][0]) / planted
        assert top.is_symlink() and os.readlink(top) == PLANTED
