"""The microVM tier: each box in a fresh QEMU microvm booting Debian's kernel, the image's
layers as read-only erofs disks, a guest agent applying the box's limits inside."""

from __future__ import annotations

import shutil

from sandbox.backends.microvm.backend import MicrovmBackend
from sandbox.backends.microvm.prepare import prepared
from sandbox.backends.microvm.qemu_plan import QEMU
from sandbox.config import HostConfig

__all__ = ["MicrovmBackend", "probe"]


def probe(config: HostConfig) -> str | None:
    """None when this host can run microVMs, else why not."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed (Debian package qemu-system-x86)"
    if prepared(config.state_dir):
        return None
    missing = [t for t in ("apt-get", "dpkg-deb", "gcc", "mkfs.erofs") if shutil.which(t) is None]
    if missing:
        return (
            f"the guest kernel is not prepared and {', '.join(missing)} is missing to "
            "prepare it (stockade microvm prepare)"
        )
    return None
