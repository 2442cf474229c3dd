"""Root file system plans: read-only layers, the per-slot init layer, the per-box scratch layer."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sandbox import mounts as m
from sandbox import syscalls as sc

# The read-only content of `--rootfs host`: these host paths and nothing else of the host.
HOST_PATHS = (
    "/usr",
    "/bin",
    "/lib",
    "/lib64",
    "/etc/alternatives",
    # Debian's JDK reads its conf/ (java.security, net.properties) through symlinks from
    # /usr/lib/jvm/*/conf into here; without it the JVM does not start.
    "/etc/java-17-openjdk",
    # The same for other toolchains whose Debian packages keep files under /usr as symlinks
    # into /etc or /var (read-only here as well): Mono's machine.config, R's Renviron and
    # Makeconf, GnuCOBOL's dialect configurations, GHC's global package database.
    "/etc/mono",
    "/etc/R",
    "/etc/gnucobol",
    "/var/lib/ghc",
)
# The dynamic linker's cache: without it every exec probes dozens of library paths.
HOST_FILES = ("/etc/ld.so.cache",)
DEVICES = ("null", "zero", "full", "random", "urandom")
SCRATCH_DIR = "/.scratch"
HOSTNAME = "stockade"

# Entries of a fresh /proc that leak host facts or accept writes; see proc(5). Files are
# covered by a bind of /dev/null, directories become read-only binds of themselves.
PROC_MASKED_FILES = (
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/sysrq-trigger",
    "/proc/kallsyms",
    "/proc/kmsg",
    "/proc/config.gz",
)
PROC_READONLY_DIRS = ("/proc/sys", "/proc/irq", "/proc/bus", "/proc/fs")


@dataclass(frozen=True)
class BoxUser:
    uid: int
    gid: int
    name: str = "box"


def init_layer(user: BoxUser) -> list[m.Op]:
    """Docker's init layer: identity files generated for the box, root-owned and read-only."""
    passwd = (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"{user.name}:x:{user.uid}:{user.gid}:{user.name}:/box:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    group = f"root:x:0:\n{user.name}:x:{user.gid}:\nnogroup:x:65534:\n"
    hosts = f"127.0.0.1\tlocalhost {HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    return [
        m.WriteFile("/etc/passwd", passwd.encode()),
        m.WriteFile("/etc/group", group.encode()),
        m.WriteFile("/etc/hosts", hosts.encode()),
        m.WriteFile("/etc/hostname", f"{HOSTNAME}\n".encode()),
        m.WriteFile("/etc/resolv.conf", b"nameserver 127.0.0.1\noptions attempts:1 timeout:1\n"),
        m.WriteFile("/etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files dns\n"),
    ]


def host_layer(host_root: str = "/") -> list[m.Op]:
    """Read-only binds of the host's runtime paths; merged-/usr symlinks stay symlinks."""
    ops: list[m.Op] = []
    made = {"/", "/etc"}  # the skeleton's
    for path in HOST_PATHS:
        src = os.path.join(host_root, path.lstrip("/"))
        if os.path.islink(src):
            ops.append(m.Symlink(os.readlink(src), path))
        elif os.path.isdir(src):
            # Bare directories up to a deeper mount point (/var/lib for /var/lib/ghc): none
            # of the host's own content comes with them.
            # (os.path, not pathlib: this module is loaded in the zygote.)
            parts = path.strip("/").split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                parent = "/" + "/".join(parts[:depth])
                if parent not in made:
                    made.add(parent)
                    ops.append(m.Mkdir(parent))
            ops.append(m.Mkdir(path))
            ops.append(m.Bind(src, path))
    for path in HOST_FILES:
        src = os.path.join(host_root, path.lstrip("/"))
        if os.path.isfile(src):
            ops.append(m.WriteFile(path, b""))
            ops.append(m.Bind(src, path))
    return ops


def _skeleton() -> list[m.Op]:
    """Mount points and /dev entries every root needs, whatever the image holds."""
    ops: list[m.Op] = [
        m.Mkdir("/etc"),
        m.Mkdir("/dev"),
        m.Mkdir("/dev/shm"),
        m.Mkdir("/proc", 0o555),
        m.Mkdir("/box"),
        m.Mkdir("/tmp", 0o1777),
        m.Mkdir(SCRATCH_DIR, 0o700),
    ]
    for dev in DEVICES:
        ops.append(m.WriteFile(f"/dev/{dev}", b"", 0o666))
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        ops.append(m.Symlink(target, f"/dev/{name}"))
    return ops


def _device_binds() -> list[m.Op]:
    # A device node works only on a mount without nodev: each bind keeps the host's flags
    # (no nodev) while everything around it is nodev.
    return [
        m.Bind(f"/dev/{dev}", f"/dev/{dev}", readonly=False, flags=sc.MS_NOSUID) for dev in DEVICES
    ]


def init_dir_plan(user: BoxUser) -> list[m.Op]:
    """The init layer of an image box as a plain directory: the top overlay lower layer,
    over the image's own layers (overlay cannot see mounts, so nothing here is a mount)."""
    return _skeleton() + init_layer(user)


def image_template_plan(init_dir: str, layers: list[str]) -> list[m.Op]:
    """An image's root: its layers under the slot's init layer, read-only, plus devices."""
    return [m.Overlay("", (init_dir, *layers)), *_device_binds()]


def template_plan(user: BoxUser, host_root: str = "/") -> list[m.Op]:
    """Everything a box of this slot shares with every other box of it: built once, then
    cloned per box. The template's root tmpfs is remounted read-only at the end."""
    ops: list[m.Op] = [m.Tmpfs("", "size=1m,nr_inodes=512,mode=0755"), *_skeleton()]
    ops += host_layer(host_root)
    ops += init_layer(user)
    ops += _device_binds()
    ops.append(m.Remount("", sc.MS_RDONLY | m.SAFE, bind=False))
    return ops


def scratch_plan(scratch_bytes: int, scratch_inodes: int, user: BoxUser) -> list[m.Op]:
    """The per-box read-write layer: one size-capped tmpfs holding /box, /tmp and /dev/shm."""
    s = SCRATCH_DIR
    return [
        m.Tmpfs(s, f"size={scratch_bytes},nr_inodes={scratch_inodes},mode=0755"),
        m.Mkdir(f"{s}/box", 0o755, user.uid, user.gid),
        m.Mkdir(f"{s}/tmp", 0o1777),
        m.Mkdir(f"{s}/shm", 0o1777),
        m.Bind(f"{s}/box", "/box", readonly=False, remount=False),
        m.Bind(f"{s}/tmp", "/tmp", readonly=False, remount=False),
        m.Bind(f"{s}/shm", "/dev/shm", readonly=False, remount=False),
    ]


def proc_plan(masked_files: tuple[str, ...], readonly_dirs: tuple[str, ...]) -> list[m.Op]:
    """A fresh /proc for the box's pid namespace with the sensitive entries masked."""
    ops: list[m.Op] = [m.Proc("/proc")]
    for path in masked_files:
        # /dev/null's own mount is writable, and writes to it vanish: one call is enough.
        ops.append(m.Bind("/dev/null", path, remount=False))
    for path in readonly_dirs:
        ops.append(m.Bind(path, path, readonly=True, flags=m.SAFE | sc.MS_NOEXEC))
    return ops


def proc_plan_for_host() -> list[m.Op]:
    """Only entries this kernel has can be masked (config.gz needs IKCONFIG_PROC, for one)."""
    return proc_plan(
        tuple(p for p in PROC_MASKED_FILES if os.path.exists(p)),
        tuple(p for p in PROC_READONLY_DIRS if os.path.isdir(p)),
    )
