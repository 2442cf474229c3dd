"""What every microVM needs, made once under <state_dir>/microvm: the kernel, the agent, the
initramfs. `stockade microvm prepare` runs it ahead of the first box."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from sandbox.backends.microvm.initramfs import build_agent, build_initramfs
from sandbox.backends.microvm.kernel import prepare_kernel

_lock = threading.Lock()


@dataclass(frozen=True)
class Artifacts:
    root: str  # <state_dir>/microvm
    kernel_version: str
    vmlinux: str
    initramfs: str

    @property
    def disk_dir(self) -> str:
        return os.path.join(self.root, "disks")

    @property
    def snapshot_dir(self) -> str:
        return os.path.join(self.root, "snapshots")


def microvm_root(state_dir: str) -> str:
    return os.path.join(state_dir, "microvm")


def prepare(state_dir: str) -> Artifacts:
    """Fetch the kernel, build the agent and the initramfs: each only if missing."""
    root = microvm_root(state_dir)
    with _lock:
        os.makedirs(root, mode=0o755, exist_ok=True)
        os.chmod(root, 0o755)  # QEMU's unprivileged uid reads the kernel and the disks
        kernel = prepare_kernel(os.path.join(root, "kernel"))
        agent = build_agent(root)
        initramfs = build_initramfs(root, agent, list(kernel.modules))
        return Artifacts(root, kernel.version, kernel.vmlinux, initramfs)


def prepared(state_dir: str) -> bool:
    """Whether a kernel is already unpacked (without asking apt which one is current)."""
    kernels = os.path.join(microvm_root(state_dir), "kernel")
    try:
        return any(os.path.exists(os.path.join(kernels, d, "vmlinux")) for d in os.listdir(kernels))
    except OSError:
        return False
