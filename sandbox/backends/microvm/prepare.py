"""What every microVM needs, made once under <state_dir>/microvm: the kernel, the agent, the
initramfs. `stockade microvm prepare` runs it ahead of the first box."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from dataclasses import dataclass

from sandbox.backends.microvm.initramfs import build_agent, build_initramfs, source_digest
from sandbox.backends.microvm.kernel import prepare_kernel

_lock = threading.Lock()
MANIFEST = "prepared.json"


@dataclass(frozen=True)
class Artifacts:
    root: str  # <state_dir>/microvm
    kernel_version: str
    vmlinux: str
    initramfs: str

    @property
    def disk_dir(self) -> str:
        return os.path.join(self.root, "disks")


def microvm_root(state_dir: str) -> str:
    return os.path.join(state_dir, "microvm")


def prepare(state_dir: str, refresh: bool = False) -> Artifacts:
    """What was prepared last (prepared.json), as long as its files exist and the agent's
    sources have not changed; else (or with refresh: apt may know a newer kernel) fetch the
    kernel, build the agent and the initramfs, each only if missing."""
    root = microvm_root(state_dir)
    manifest = os.path.join(root, MANIFEST)
    with _lock:
        if not refresh and (cached := _cached(manifest)) is not None:
            return cached
        os.makedirs(root, mode=0o755, exist_ok=True)
        os.chmod(root, 0o755)  # QEMU's unprivileged uid reads the kernel and the disks
        kernel = prepare_kernel(os.path.join(root, "kernel"))
        agent = build_agent(root)
        initramfs = build_initramfs(root, agent, list(kernel.modules))
        art = Artifacts(root, kernel.version, kernel.vmlinux, initramfs)
        record = {**dataclasses.asdict(art), "agent_sources": source_digest()}
        tmp = f"{manifest}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.replace(tmp, manifest)
        return art


def _cached(manifest: str) -> Artifacts | None:
    try:
        with open(manifest) as f:
            record = json.load(f)
        if record.pop("agent_sources") != source_digest():
            return None
        art = Artifacts(**record)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return art if os.path.exists(art.vmlinux) and os.path.exists(art.initramfs) else None


def prepared(state_dir: str) -> bool:
    """Whether a kernel is already unpacked (without asking apt which one is current)."""
    kernels = os.path.join(microvm_root(state_dir), "kernel")
    try:
        return any(os.path.exists(os.path.join(kernels, d, "vmlinux")) for d in os.listdir(kernels))
    except OSError:
        return False
