"""The guest's initramfs: the agent as /init, busybox for a debugging shell, the modules the
agent loads. A newc cpio written here (pure), stored once under its own digest."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import SandboxError

AGENT_SOURCES = ("agent.c", "agent_job.h", "agent_run.h", "agent_stdin.h")
BUSYBOX = "/bin/busybox"


@dataclass(frozen=True)
class Entry:
    """One cpio member: a directory (data None, no target), a file, or a symlink (target)."""

    path: str
    mode: int
    data: bytes | None = None
    target: str = ""


def _header(ino: int, mode: int, size: int, name: bytes) -> bytes:
    fields = (ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name) + 1, 0)
    return b"070701" + b"".join(b"%08X" % f for f in fields) + name + b"\0"


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def cpio_newc(entries: list[Entry]) -> bytes:
    """A newc archive (the format the kernel unpacks into its rootfs: initramfs-buffer-
    format.rst), owned by root, mtime 0, so equal inputs give equal bytes."""
    out = bytearray()
    for ino, e in enumerate(entries, start=1):
        if e.target:
            mode, body = 0o120000 | 0o777, e.target.encode()
        elif e.data is None:
            mode, body = 0o040000 | e.mode, b""
        else:
            mode, body = 0o100000 | e.mode, e.data
        head = _header(ino, mode, len(body), e.path.lstrip("/").encode())
        out += head + _pad(len(head)) + body + _pad(len(body))
    trailer = _header(0, 0, 0, b"TRAILER!!!")
    out += trailer + _pad(len(trailer))
    return bytes(out)


def guest_entries(
    agent: bytes, busybox: bytes | None, modules: list[tuple[str, bytes]]
) -> list[Entry]:
    """The guest's whole initramfs; `modules` are (name, .ko bytes) in load order."""
    dirs = ["dev", "proc", "sys", "etc", "bin", "lib", "lib/modules", "layers", "root", "scratch"]
    entries = [Entry(d, 0o755) for d in dirs]
    entries.append(Entry("init", 0o755, agent))
    if busybox is not None:
        entries.append(Entry("bin/busybox", 0o755, busybox))
        entries.append(Entry("bin/sh", 0o777, target="busybox"))
    entries.append(Entry("etc/modules", 0o644, "".join(f"{n}\n" for n, _ in modules).encode()))
    entries += [Entry(f"lib/modules/{n}.ko", 0o644, ko) for n, ko in modules]
    return entries


def source_digest() -> str:
    h = hashlib.sha256()
    for name in AGENT_SOURCES:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:16]


def build_agent(out_dir: str) -> str:
    """Compile the agent once per source digest (gcc -static -O2); returns its path."""
    out = os.path.join(out_dir, f"agent-{source_digest()}")
    if os.path.exists(out):
        return out
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SandboxError("agent", "gcc", 0, "gcc is needed to build the guest agent")
    src = str(Path(__file__).parent / "agent.c")
    tmp = f"{out}.tmp{os.getpid()}"
    cmd = [gcc, "-static", "-O2", "-Wall", "-o", tmp, src]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SandboxError("agent", " ".join(cmd), 0, done.stderr.strip()[-600:])
    os.chmod(tmp, 0o755)
    os.rename(tmp, out)
    return out


def build_initramfs(out_dir: str, agent_path: str, module_paths: list[str]) -> str:
    """Write the initramfs under its content digest unless it is there; returns its path."""
    with open(agent_path, "rb") as f:
        agent = f.read()
    busybox = Path(BUSYBOX).read_bytes() if os.path.exists(BUSYBOX) else None
    modules = [(Path(p).name[:-3].replace("-", "_"), Path(p).read_bytes()) for p in module_paths]
    data = cpio_newc(guest_entries(agent, busybox, modules))
    out = os.path.join(out_dir, f"initramfs-{hashlib.sha256(data).hexdigest()[:16]}.cpio")
    if not os.path.exists(out):
        tmp = f"{out}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.rename(tmp, out)
    return out
