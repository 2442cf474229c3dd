"""ctypes wrappers for the syscalls Python 3.11 lacks: unshare, setns, mount, mount_setattr,
pivot_root, prctl."""

from __future__ import annotations

import ctypes
import os

from sandbox.errors import SandboxError

# Named directly: ctypes.util.find_library would import subprocess and shutil into the zygote.
_libc = ctypes.CDLL("libc.so.6", use_errno=True)

# <linux/sched.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# <sys/mount.h>
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

# <linux/prctl.h>
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_DUMPABLE = 4

SYS_pivot_root = 155  # x86_64
SYS_setns = 308
SYS_unshare = 272
SYS_mount_setattr = 442  # Linux 5.12

# <linux/mount.h>, <fcntl.h>: mount_setattr(2)
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
_MS_TO_MOUNT_ATTR = (
    (MS_RDONLY, MOUNT_ATTR_RDONLY),
    (MS_NOSUID, MOUNT_ATTR_NOSUID),
    (MS_NODEV, MOUNT_ATTR_NODEV),
    (MS_NOEXEC, MOUNT_ATTR_NOEXEC),
)
ENOSYS = 38

_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.syscall.restype = ctypes.c_long


def _fail(step: str, call: str) -> SandboxError:
    return SandboxError(step, call, ctypes.get_errno())


def _b(s: str | bytes | None) -> bytes | None:
    if s is None or isinstance(s, bytes):
        return s
    return s.encode()


# Each wrapper formats its error text only on failure: these run in every box's init.


def unshare(flags: int, step: str = "unshare") -> None:
    if _libc.unshare(flags) < 0:
        raise _fail(step, f"unshare({flags:#x})")


def setns(fd: int, nstype: int, step: str = "setns") -> None:
    if _libc.setns(fd, nstype) < 0:
        raise _fail(step, f"setns({fd}, {nstype:#x})")


def mount(
    source: str | bytes | None,
    target: str | bytes,
    fstype: str | bytes | None,
    flags: int = 0,
    data: str | bytes | None = None,
    step: str = "mount",
) -> None:
    ret = _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data))
    if ret < 0:
        src = source.decode() if isinstance(source, bytes) else source
        tgt = target.decode() if isinstance(target, bytes) else target
        fs = fstype.decode() if isinstance(fstype, bytes) else fstype
        raise SandboxError(step, f"mount({src}, {tgt}, {fs}, {flags:#x})", ctypes.get_errno())


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def mount_setattr_recursive(target: str, ms_flags: int, step: str = "mount_setattr") -> bool:
    """Add ms_flags' MS_RDONLY, MS_NOSUID, MS_NODEV and MS_NOEXEC to the mount at target and
    every mount below it (AT_RECURSIVE), leaving their other flags as they are. False when
    the kernel has no mount_setattr (ENOSYS: before 5.12). mount_setattr(2)."""
    attr = _MountAttr(sum(a for ms, a in _MS_TO_MOUNT_ATTR if ms_flags & ms), 0, 0, 0)
    ret = _libc.syscall(
        ctypes.c_long(SYS_mount_setattr),
        ctypes.c_int(AT_FDCWD),
        ctypes.c_char_p(target.encode()),
        ctypes.c_uint(AT_RECURSIVE),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if ret < 0:
        err = ctypes.get_errno()
        if err == ENOSYS:
            return False
        call = f"mount_setattr({target}, AT_RECURSIVE, set={attr.attr_set:#x})"
        raise SandboxError(step, call, err)
    return True


def umount2(target: str | bytes, flags: int, step: str = "umount") -> None:
    if _libc.umount2(_b(target), flags) < 0:
        raise _fail(step, f"umount2({target!r}, {flags})")


def pivot_root(new_root: str, put_old: str, step: str = "pivot_root") -> None:
    if _libc.syscall(SYS_pivot_root, _b(new_root), _b(put_old)) < 0:
        raise _fail(step, f"pivot_root({new_root}, {put_old})")


def prctl(option: int, arg2: int = 0, arg3: int = 0, step: str = "prctl") -> int:
    ret: int = _libc.prctl(option, arg2, arg3, 0, 0)
    if ret < 0:
        raise _fail(step, f"prctl({option}, {arg2})")
    return ret


def prctl_name(name: bytes) -> None:
    """prctl(PR_SET_NAME): the comm shown by ps and /proc/<pid>/comm (15 bytes at most)."""
    buf = ctypes.create_string_buffer(name[:15])
    _libc.prctl(15, ctypes.addressof(buf), 0, 0, 0)


def sethostname(name: str, step: str = "uts") -> None:
    raw = name.encode()
    if _libc.sethostname(raw, len(raw)) < 0:
        raise _fail(step, f"sethostname({name})")


def errno_error(step: str, call: str, err: OSError) -> SandboxError:
    return SandboxError(step, call, err.errno or 0)


def ns_fd(pid: int | str, kind: str) -> int:
    return os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
