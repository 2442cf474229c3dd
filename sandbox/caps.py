"""Capabilities: empty every set (bounding, ambient, inheritable, permitted, effective)."""

from __future__ import annotations

import ctypes

from sandbox import syscalls as sc
from sandbox.errors import SandboxError

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
SYS_capset = 126


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def drop_bounding_in_child(last: int) -> None:
    """PR_CAPBSET_DROP needs CAP_SETPCAP, so this runs while the child is still root."""
    for cap in range(last + 1):
        sc.prctl(sc.PR_CAPBSET_DROP, cap, step="capabilities")
    sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL, step="capabilities")


def clear_all_in_child() -> None:
    """setresuid to a non-zero uid clears permitted and effective but not inheritable
    (capabilities(7)), so zero all three explicitly."""
    hdr = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    ret = sc._libc.syscall(SYS_capset, ctypes.byref(hdr), ctypes.byref(data))
    if ret < 0:
        raise SandboxError("capabilities", "capset(0, 0, 0)", ctypes.get_errno())
