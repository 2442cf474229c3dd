"""Layer disks: each image layer as a read-only erofs image, built once per layer digest."""

from __future__ import annotations

import os
import subprocess
import threading

from sandbox.errors import SandboxError

FSTYPE = "erofs"
# In every disk's name, after the layer's digest: bumped when layers change in place, so that
# no disk made before shows the guest what the host's layer no longer holds. 2: layers lost
# their set-id bits and file capabilities (sandbox/images/setid.py).
DISK_FORMAT = 2
_lock = threading.Lock()


def layer_digest(layer_dir: str) -> str:
    """The layer store (sandbox/images/store.py) names each layer directory by its digest."""
    return os.path.basename(os.path.normpath(layer_dir))


def mkfs_command(layer_dir: str, out: str) -> list[str]:
    # -T0: every timestamp 0, so one layer always gives the same bytes. Whiteouts (0/0
    # character devices) and overlay xattrs pass through as they are, so the guest's overlay
    # reads the layers exactly as the host's does.
    return ["mkfs.erofs", "-T0", "--quiet", out, layer_dir]


def layer_disk(disk_dir: str, layer_dir: str) -> str:
    """The erofs image of one layer, built on first use; readable by QEMU's unprivileged uid
    (its content is the layer's, which every box of the image sees anyway)."""
    out = os.path.join(disk_dir, f"{layer_digest(layer_dir)}-{DISK_FORMAT}.{FSTYPE}")
    if os.path.exists(out):
        return out
    with _lock:
        if os.path.exists(out):
            return out
        os.makedirs(disk_dir, mode=0o755, exist_ok=True)
        tmp = f"{out}.tmp{os.getpid()}"
        cmd = mkfs_command(layer_dir, tmp)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except OSError as e:
            raise SandboxError("layer disk", cmd[0], e.errno or 0) from e
        if done.returncode != 0:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise SandboxError("layer disk", " ".join(cmd), 0, done.stderr.strip()[-400:])
        os.chmod(tmp, 0o644)
        os.rename(tmp, out)
    return out


def image_disks(disk_dir: str, layer_dirs: list[str]) -> list[str]:
    """Disks for an image's layers, top-most first (overlay's lowerdir order)."""
    return [layer_disk(disk_dir, d) for d in layer_dirs]
