"""The lab's kernel (the microVM tier's) and an initramfs that mounts the lab's root and hands
over to systemd or to the job runner."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sandbox.backends.microvm.initramfs import BUSYBOX, Entry, cpio_newc
from sandbox.backends.microvm.kernel import prepare_kernel, resolve_modules

# Beyond the microVM tier's set: 9p over virtio for the read-only checkout, ext4 for the
# scratch disk. resolve_modules() adds what each depends on (netfs, jbd2, mbcache, crc16).
LAB_MODULES = (
    "crc32c_generic",
    "virtio_mmio",
    "virtio_console",
    "virtio_blk",
    "erofs",
    "overlay",
    "9pnet_virtio",
    "9p",
    "ext4",
)
INIT = Path(__file__).with_name("init.sh")


@dataclass(frozen=True)
class Boot:
    vmlinux: str
    initramfs: str
    kernel_version: str


def lab_modules(lab_dir: str, package: str, version: str) -> list[str]:
    """The lab's modules, copied once out of the kernel's own package into lab_dir (the
    microVM tier keeps only its own few)."""
    tree = os.path.join(lab_dir, f"modules-{version}")
    if not os.path.isdir(tree):
        os.makedirs(lab_dir, mode=0o755, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".fetch-", dir=lab_dir)
        try:
            subprocess.run(["apt-get", "download", "-q", package], cwd=tmp, check=True)
            (deb,) = [n for n in os.listdir(tmp) if n.endswith(".deb")]
            subprocess.run(["dpkg-deb", "-x", deb, "x"], cwd=tmp, check=True)
            src = os.path.join(tmp, "x", "lib", "modules", version)
            kept = os.path.join(tmp, "kept")
            os.mkdir(kept)
            for ko in resolve_modules(src, LAB_MODULES):
                shutil.copy(ko, kept)
            os.rename(kept, tree)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return resolve_modules(tree, LAB_MODULES)


def prepare_boot(state_dir: str) -> Boot:
    """The kernel, its lab modules and the initramfs, each made once."""
    microvm = os.path.join(state_dir, "microvm")
    kernel = prepare_kernel(os.path.join(microvm, "kernel"))
    lab_dir = os.path.join(state_dir, "v2lab")
    modules = lab_modules(lab_dir, f"linux-image-{kernel.version}", kernel.version)
    entries = [Entry(d, 0o755) for d in ("dev", "proc", "sys", "bin", "lib", "newroot", "rw")]
    entries.append(Entry("init", 0o755, INIT.read_bytes()))
    entries.append(Entry("bin/busybox", 0o755, Path(BUSYBOX).read_bytes()))
    entries.append(Entry("bin/sh", 0o777, target="busybox"))
    names = [Path(p).name[:-3].replace("-", "_") for p in modules]
    entries.append(Entry("lib/modules.order", 0o644, "".join(f"{n}\n" for n in names).encode()))
    entries += [
        Entry(f"lib/{n}.ko", 0o644, Path(p).read_bytes())
        for n, p in zip(names, modules, strict=True)
    ]
    data = cpio_newc(entries)
    out = os.path.join(lab_dir, f"initramfs-{hashlib.sha256(data).hexdigest()[:16]}.cpio")
    if not os.path.exists(out):
        tmp = f"{out}.tmp{os.getpid()}"
        Path(tmp).write_bytes(data)
        os.rename(tmp, out)
    return Boot(kernel.vmlinux, out, kernel.version)
