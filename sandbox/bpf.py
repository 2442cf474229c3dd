"""Loading a compiled seccomp filter (raw BPF) into the calling thread: seccomp(2), one prctl."""

from __future__ import annotations

import ctypes

from sandbox.errors import SandboxError

PR_SET_SECCOMP = 22  # <linux/prctl.h>
SECCOMP_MODE_FILTER = 2  # <linux/seccomp.h>
BPF_MAXINSNS = 4096  # <linux/bpf_common.h>

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_prctl = _libc.prctl
_prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
_prctl.restype = ctypes.c_int


class SockFprog(ctypes.Structure):  # struct sock_fprog, <linux/filter.h>
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


class Program:
    """A BPF program and the struct sock_fprog pointing at it, built once, loaded by one
    prctl. The caller must already have set no_new_privs (or hold CAP_SYS_ADMIN), else the
    kernel says EACCES; the filter then holds across execve and for every descendant."""

    def __init__(self, name: str, bpf: bytes) -> None:
        count, rest = divmod(len(bpf), 8)  # struct sock_filter is 8 bytes
        if rest or not 0 < count <= BPF_MAXINSNS:
            raise SandboxError("seccomp", "load BPF", detail=f"{name}: {len(bpf)} bytes")
        self.name = name
        self.bpf = bytes(bpf)
        self.instructions = count
        # 8-byte aligned copy: the kernel reads each sock_filter's 32-bit k in place.
        self._insns = (ctypes.c_uint64 * count).from_buffer_copy(self.bpf)
        self._prog = SockFprog(count, ctypes.addressof(self._insns))
        self._prog_addr = ctypes.addressof(self._prog)

    def install(self) -> None:
        if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, self._prog_addr, 0, 0) != 0:
            raise SandboxError("seccomp", "prctl(PR_SET_SECCOMP)", ctypes.get_errno())


def load(bpf: bytes) -> None:
    """Load raw BPF into the calling thread."""
    Program("<bytes>", bpf).install()
