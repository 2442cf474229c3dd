"""QEMU's jail: fresh net, mount, ipc, uts, pid and cgroup namespaces, and a root holding only
QEMU's code and firmware, the guest kernel and the initramfs. The plan is pure and made in the
launcher; the steps run in QEMU's child, between fork and execve."""

from __future__ import annotations

import ctypes
import os
import signal
from dataclasses import dataclass

from sandbox import syscalls as sc
from sandbox.errors import SandboxError

# What QEMU's code needs beside its binary: the dynamic loader and the shared libraries
# (Debian builds TCG itself as a module, <libdir>/qemu/accel-tcg-x86_64.so), then its firmware
# (microvm's qboot.rom). A merged-/usr symlink is copied as a symlink, a directory is bound
# read-only, a path the host lacks is left out.
RUNTIME = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/share/qemu")
KERNEL = "/vm/vmlinux"
INITRAMFS = "/vm/initramfs"
KVM = "/dev/kvm"
# A new pid namespace takes effect for the caller's children only (pid_namespaces(7)), so
# QEMU is cloned into it rather than unshared: pid 1 there, and nothing of the host's to see.
# A network namespace of its own has only lo, down: no address, not even the host's loopback
# where Redis and the API listen (network_namespaces(7)).
NAMESPACES = (
    sc.CLONE_NEWNS
    | sc.CLONE_NEWNET
    | sc.CLONE_NEWIPC
    | sc.CLONE_NEWUTS
    | sc.CLONE_NEWPID
    | sc.CLONE_NEWCGROUP
)
# clone(2): CLONE_PARENT gives the new process the caller's parent, so QEMU is the launcher's
# own child (reaped, killed and PDEATHSIG-bound as before) though an intermediate cloned it.
CLONE_PARENT = 0x00008000
SYS_clone = 56
ROOT_TMPFS = "size=64k,nr_inodes=64,mode=0755"

# PyDLL keeps the GIL across the call: the clone must come back holding it.
_pylibc = ctypes.PyDLL(None, use_errno=True)
_pylibc.syscall.restype = ctypes.c_long


@dataclass(frozen=True)
class Bind:
    """A host path bound read-only at the same or another path of the jail's root."""

    source: str
    target: str
    is_dir: bool
    device: bool = False  # /dev/kvm: the one bind that keeps device access


@dataclass(frozen=True)
class JailPlan:
    qemu: str  # QEMU's binary, at the same path inside and out
    mount_point: str  # an empty host directory; the root's tmpfs covers it in QEMU's mounts only
    binds: tuple[Bind, ...]
    symlinks: tuple[tuple[str, str], ...]  # (path in the root, target)


def host_runtime(paths: tuple[str, ...] = RUNTIME) -> tuple[dict[str, str], tuple[str, ...]]:
    """Which of `paths` are symlinks here (path -> target) and which directories."""
    links = {p: os.readlink(p) for p in paths if os.path.islink(p)}
    dirs = tuple(p for p in paths if p not in links and os.path.isdir(p))
    return links, dirs


def jail_plan(
    mount_point: str,
    qemu: str,
    vmlinux: str,
    initramfs: str,
    kvm: bool,
    links: dict[str, str],
    dirs: tuple[str, ...],
) -> JailPlan:
    """The root QEMU sees: its runtime, its binary at its own path, the kernel and initramfs
    at KERNEL and INITRAMFS, /dev/kvm only on KVM. Disks and the channel are inherited fds."""
    binds = [Bind(d, d, True) for d in dirs]
    if not any(qemu.startswith(d.rstrip("/") + "/") for d in dirs):
        binds.append(Bind(qemu, qemu, False))
    binds += [Bind(vmlinux, KERNEL, False), Bind(initramfs, INITRAMFS, False)]
    if kvm:
        binds.append(Bind(KVM, KVM, False, device=True))
    return JailPlan(qemu, mount_point, tuple(binds), tuple(sorted(links.items())))


def clone_into_namespaces(report_fd: int) -> None:
    """In the child between fork and execve: clone QEMU-to-be into NAMESPACES as a sibling
    (CLONE_PARENT); this process reports its pid and exits, the clone returns."""
    flags = NAMESPACES | CLONE_PARENT | signal.SIGCHLD
    pid = _pylibc.syscall(
        ctypes.c_long(SYS_clone),
        ctypes.c_ulong(flags),
        ctypes.c_void_p(0),
        ctypes.c_void_p(0),
        ctypes.c_void_p(0),
        ctypes.c_ulong(0),
    )
    if pid < 0:
        raise SandboxError("qemu jail", f"clone({flags:#x})", ctypes.get_errno())
    if pid > 0:
        os.write(report_fd, b"P%d\n" % pid)
        os._exit(0)


def _make_target(path: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(path, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def enter_root(plan: JailPlan) -> None:
    """In QEMU's clone, still root: a read-only tmpfs root of binds and symlinks, pivoted
    into, the host's tree detached (pivot_root(2): new_root "." over put_old ".")."""
    step = "qemu jail"
    # Nothing mounted here may reach the host's mount namespace (mount_namespaces(7)).
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, step=step)
    root = plan.mount_point
    hardened = sc.MS_NOSUID | sc.MS_NODEV
    sc.mount("qemu-root", root, "tmpfs", hardened | sc.MS_NOEXEC, ROOT_TMPFS, step=step)
    for b in plan.binds:
        target = root + b.target
        try:
            _make_target(target, b.is_dir)
        except OSError as e:
            raise SandboxError(step, f"mkdir/open({b.target})", e.errno or 0) from e
        sc.mount(b.source, target, None, sc.MS_BIND, step=step)
        # A bind takes its flags only from a remount (mount(2) "Creating a bind mount").
        flags = sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | sc.MS_NOSUID
        sc.mount(None, target, None, flags | (0 if b.device else sc.MS_NODEV), step=step)
    for path, target in plan.symlinks:
        try:
            os.symlink(target, root + path)
        except OSError as e:
            raise SandboxError(step, f"symlink({path})", e.errno or 0) from e
    sc.mount(None, root, None, sc.MS_REMOUNT | sc.MS_RDONLY | hardened | sc.MS_NOEXEC, step=step)
    os.chdir(root)
    sc.pivot_root(".", ".", step=step)
    sc.umount2(".", sc.MNT_DETACH, step=step)
    os.chdir("/")
