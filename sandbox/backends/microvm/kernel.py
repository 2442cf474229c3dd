"""The guest kernel: Debian's linux-image-amd64 fetched with apt-get download, unpacked with
dpkg-deb -x into the state dir (never the host's /boot), its vmlinux taken out of the
bzImage for PVH boot, and the modules the guest needs in load order."""

from __future__ import annotations

import lzma
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from sandbox.errors import SandboxError

META_PACKAGE = "linux-image-amd64"
# What the agent needs beyond the built-in kernel: the virtio-mmio transport, its channel
# (a virtio-serial port), block disks
# for the layers, erofs to read them, overlay for the writable root. crc32c_generic first:
# libcrc32c (erofs needs it) asks the crypto API for "crc32c" when it loads, a soft
# dependency that no depends= names.
WANTED_MODULES = (
    "crc32c_generic",
    "virtio_mmio",
    "virtio_console",
    "virtio_blk",
    "erofs",
    "overlay",
)
XZ_MAGIC = b"\xfd7zXZ\x00"
ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class Kernel:
    """A prepared kernel: the uncompressed vmlinux and the modules, in load order."""

    version: str  # e.g. 6.1.0-56-amd64
    vmlinux: str
    modules: tuple[str, ...]  # paths of .ko files, dependencies first


def real_package(depends_output: str) -> str:
    """The versioned image package behind the meta-package, from `apt-cache depends`."""
    for line in depends_output.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-[0-9][^\s<>]*)", line)
        if m:
            return m.group(1)
    raise ValueError(f"no linux-image-<version> dependency in: {depends_output.strip()[:200]}")


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The ELF vmlinux inside a bzImage (Debian's are xz): what scripts/extract-vmlinux does.
    PVH boots the ELF directly, skipping the decompressor, which under TCG costs seconds."""
    at = bzimage.find(XZ_MAGIC)
    while at >= 0:
        try:
            out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(bzimage[at:])
        except lzma.LZMAError:
            out = b""
        if out.startswith(ELF_MAGIC):
            return out
        at = bzimage.find(XZ_MAGIC, at + 1)
    raise ValueError("no xz-compressed ELF kernel found in the bzImage")


def module_depends(ko: bytes) -> tuple[str, ...]:
    """The `depends=` of a module's .modinfo section (the names depmod would read)."""
    m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", ko)
    if m is None or not m.group(1):
        return ()
    return tuple(m.group(1).decode().split(","))


def load_order(wanted: tuple[str, ...], depends: dict[str, tuple[str, ...]]) -> list[str]:
    """Module names with every dependency before its user (a depth-first topological sort);
    a name missing from `depends` is taken as built in."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in seen or name not in depends:
            return
        if name in path:
            raise ValueError(f"module dependency cycle: {' -> '.join((*path, name))}")
        for dep in depends[name]:
            visit(dep, (*path, name))
        seen.add(name)
        order.append(name)

    for name in wanted:
        visit(name, ())
    return order


def _module_index(modules_dir: str) -> dict[str, str]:
    """Module name (dashes as underscores, as the kernel names them) -> .ko path."""
    index: dict[str, str] = {}
    for dirpath, _, names in os.walk(modules_dir):
        for n in names:
            if n.endswith(".ko"):
                index[n[:-3].replace("-", "_")] = os.path.join(dirpath, n)
    return index


def resolve_modules(modules_dir: str, wanted: tuple[str, ...] = WANTED_MODULES) -> list[str]:
    index = _module_index(modules_dir)
    depends: dict[str, tuple[str, ...]] = {}
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name in depends or name not in index:
            continue
        with open(index[name], "rb") as f:
            depends[name] = tuple(d.replace("-", "_") for d in module_depends(f.read()))
        todo += depends[name]
    return [index[n] for n in load_order(wanted, depends)]


def _run(step: str, cmd: list[str], cwd: str | None = None) -> str:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise SandboxError(step, cmd[0], e.errno or 0) from e
    if done.returncode != 0:
        raise SandboxError(step, " ".join(cmd), 0, done.stderr.strip()[-400:])
    return done.stdout


def prepare_kernel(kernel_root: str) -> Kernel:
    """Fetch and unpack the kernel once; later calls find the unpacked tree and return it."""
    package = real_package(_run("kernel", ["apt-cache", "depends", META_PACKAGE]))
    version = package.removeprefix("linux-image-")
    tree = os.path.join(kernel_root, package)
    vmlinux = os.path.join(tree, "vmlinux")
    modules_dir = os.path.join(tree, "lib", "modules", version)
    if not os.path.exists(vmlinux):
        os.makedirs(kernel_root, mode=0o755, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".fetch-", dir=kernel_root)
        try:
            _run("kernel", ["apt-get", "download", "-q", package], cwd=tmp)
            debs = [n for n in os.listdir(tmp) if n.endswith(".deb")]
            if len(debs) != 1:
                raise SandboxError("kernel", "apt-get download", 0, f"got {debs!r}")
            unpacked = os.path.join(tmp, "tree")
            _run("kernel", ["dpkg-deb", "-x", os.path.join(tmp, debs[0]), unpacked])
            kept = _keep_what_the_guest_uses(unpacked, os.path.join(tmp, "kept"), version)
            if os.path.exists(tree):
                shutil.rmtree(tree)
            os.rename(kept, tree)  # last: a crash mid-way leaves no half tree behind
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return Kernel(version, vmlinux, tuple(resolve_modules(modules_dir)))


def _keep_what_the_guest_uses(unpacked: str, kept: str, version: str) -> str:
    """A tree of the vmlinux, the config and the modules the guest loads: 460 MB unpacked
    become about 70."""
    rel_modules = os.path.join("lib", "modules", version)
    os.makedirs(os.path.join(kept, rel_modules), mode=0o755)
    with open(os.path.join(unpacked, "boot", f"vmlinuz-{version}"), "rb") as f:
        elf = extract_vmlinux(f.read())
    with open(os.path.join(kept, "vmlinux"), "wb") as f:
        f.write(elf)
    config = os.path.join(unpacked, "boot", f"config-{version}")
    if os.path.exists(config):
        shutil.copy(config, os.path.join(kept, f"config-{version}"))
    src_modules = os.path.join(unpacked, rel_modules)
    for ko in resolve_modules(src_modules):
        dest = os.path.join(kept, rel_modules, os.path.relpath(ko, src_modules))
        os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
        shutil.copy(ko, dest)
    for dirpath, dirs, files in os.walk(kept):
        for name in dirs:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in files:
            os.chmod(os.path.join(dirpath, name), 0o644)
    os.chmod(kept, 0o755)
    return kept


def tsc_khz() -> int | None:
    """The host TSC frequency in kHz, for tsc_early_khz= (MACHINE.md: without it microvm
    can hang calibrating against a PIT it does not have)."""
    try:
        with open("/sys/devices/system/cpu/cpu0/tsc_freq_khz") as f:
            return int(f.read())
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return int(float(line.split(":")[1]) * 1000)
    except (OSError, ValueError, IndexError):
        pass
    return None
