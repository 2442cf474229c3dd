"""Doctor probes that change the calling process for good (namespaces, a seccomp filter, a VM),
so each runs as `python -m sandbox.doctor.child NAME` and prints one JSON object."""

from __future__ import annotations

import ctypes
import fcntl
import json
import mmap
import os
import struct
import sys
from collections.abc import Callable
from typing import Any

from sandbox import syscalls
from sandbox.errors import SandboxError

_libc = ctypes.CDLL("libc.so.6", use_errno=True)

Result = dict[str, Any]


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def probe_userns(_: list[str]) -> Result:
    """unshare(CLONE_NEWUSER) and map our uid to 0 inside, as user_namespaces(7) describes
    (setgroups must be denied before an unprivileged gid_map write)."""
    uid, gid = os.getuid(), os.getgid()
    try:  # read before unshare: inside, the namespace's own (unlimited) value shows
        with open("/proc/sys/user/max_user_namespaces") as f:
            limit = f.read().strip()
    except OSError:
        limit = "unknown"
    syscalls.unshare(syscalls.CLONE_NEWUSER, "userns")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/gid_map", f"0 {gid} 1")
    if os.getuid() != 0:
        return {"ok": False, "detail": f"uid {os.getuid()} inside, not 0, after the uid_map"}
    detail = f"a user namespace maps uid {uid} to 0 (user.max_user_namespaces={limit})"
    return {"ok": True, "detail": detail}


def probe_overlay(args: list[str]) -> Result:
    """An overlay of a lower dir and a tmpfs upper, as the box's root file system is, in a
    private mount namespace: every mount goes with this process."""
    base = args[0]
    syscalls.unshare(syscalls.CLONE_NEWNS, "overlay")
    # Private first (mount_namespaces(7)): else the mounts below would propagate to the host.
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    syscalls.mount("tmpfs", base, "tmpfs", syscalls.MS_NOSUID | syscalls.MS_NODEV, "size=1m")
    lower, upper, work, merged = (os.path.join(base, d) for d in ("l", "u", "w", "m"))
    for d in (lower, upper, work, merged):
        os.mkdir(d)
    _write(os.path.join(lower, "seen"), "lower")
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    syscalls.mount("overlay", merged, "overlay", syscalls.MS_NOSUID | syscalls.MS_NODEV, options)
    with open(os.path.join(merged, "seen")) as f:
        seen = f.read()
    _write(os.path.join(merged, "new"), "upper")
    if seen != "lower" or not os.path.exists(os.path.join(upper, "new")):
        return {"ok": False, "detail": "the overlay mounted but did not merge its layers"}
    return {"ok": True, "detail": "an overlay of a lower dir and a tmpfs upper mounts and merges"}


def probe_seccomp(args: list[str]) -> Result:
    """Build the box's own `run` profile with libseccomp and load it. unshare(0) is a no-op
    anyone may call (unshare(2)), and the profile refuses it: EPERM after the load proves the
    kernel applies the filter."""
    from sandbox.seccomp import filter_for

    flt = filter_for("run", args[0] if args else None)
    if _libc.unshare(0) != 0:
        return {"ok": False, "detail": f"unshare(0) failed before the filter: {_errno()}"}
    syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
    flt.install()
    refused = _libc.unshare(0) != 0 and ctypes.get_errno() == 1
    if not refused:
        return {"ok": False, "detail": "the run profile loaded but unshare(0) was not refused"}
    detail = f"the run profile ({flt.instructions} BPF instructions) loads and refuses unshare"
    return {"ok": True, "detail": detail}


def _errno() -> str:
    return os.strerror(ctypes.get_errno())


# <linux/kvm.h>: _IO(KVMIO=0xAE, n) and _IOW/_IOR with the struct sizes.
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_GET_VCPU_MMAP_SIZE = 0xAE04
KVM_CREATE_VCPU = 0xAE41
KVM_RUN = 0xAE80
KVM_SET_USER_MEMORY_REGION = 0x4020AE46
KVM_SET_REGS = 0x4090AE82
KVM_GET_SREGS = 0x8138AE83
KVM_SET_SREGS = 0x4138AE84
KVM_EXIT_IO = 2
GUEST_BYTES = 0x200000  # one 2 MiB page, identity-mapped
CODE_AT = 0x10000
PORT, MAGIC = 0x10, 42
# mov al, 42; out 0x10, al; hlt
TOY_CODE = bytes([0xB0, MAGIC, 0xE6, PORT, 0xF4])


def probe_kvm(_: list[str]) -> Result:
    """A toy guest in 64-bit long mode that writes one byte to an I/O port. Passing says the
    vCPU runs; it does not say a Linux kernel boots (the parent tries that separately)."""
    try:
        kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return {"ok": False, "open_error": e.strerror, "detail": f"open(/dev/kvm): {e.strerror}"}
    api = fcntl.ioctl(kvm, KVM_GET_API_VERSION)
    vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    mem = mmap.mmap(-1, GUEST_BYTES, mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    fcntl.ioctl(vm, KVM_SET_USER_MEMORY_REGION, struct.pack("IIQQQ", 0, 0, 0, GUEST_BYTES, addr))
    # 4-level paging (PML4 at 0x1000 -> PDPT 0x2000 -> PD 0x3000 with one 2 MiB page at 0):
    # long mode needs paging on (Intel SDM vol. 3, 9.8.5).
    struct.pack_into("QQ", mem, 0x1000, 0x2000 | 3, 0)
    struct.pack_into("Q", mem, 0x2000, 0x3000 | 3)
    struct.pack_into("Q", mem, 0x3000, 0x83)  # present, writable, page size 2 MiB
    mem[CODE_AT : CODE_AT + len(TOY_CODE)] = TOY_CODE
    vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
    run = mmap.mmap(vcpu, fcntl.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE))
    sregs = bytearray(312)  # struct kvm_sregs
    fcntl.ioctl(vcpu, KVM_GET_SREGS, sregs, True)
    # struct kvm_segment (24 bytes): base, limit, selector, type, present, dpl, db, s, l, g.
    struct.pack_into("QIHBBBBBBB", sregs, 0, 0, 0xFFFFFFFF, 8, 11, 1, 0, 0, 1, 1, 1)
    for i in range(1, 6):  # ds, es, fs, gs, ss: flat data
        struct.pack_into("QIHBBBBBBB", sregs, i * 24, 0, 0xFFFFFFFF, 16, 3, 1, 0, 1, 1, 0, 1)
    # cr0 PE|ET|PG, cr3 = the PML4, cr4 PAE, efer LME|LMA.
    struct.pack_into("QQQQQQ", sregs, 224, 0x80000011, 0, 0x1000, 0x20, 0, 0x500)
    fcntl.ioctl(vcpu, KVM_SET_SREGS, bytes(sregs))
    regs = bytearray(144)  # struct kvm_regs: rip is the 17th u64, rflags (bit 1 set) the 18th
    struct.pack_into("QQ", regs, 16 * 8, CODE_AT, 2)
    fcntl.ioctl(vcpu, KVM_SET_REGS, bytes(regs))
    fcntl.ioctl(vcpu, KVM_RUN, 0)
    reason = struct.unpack_from("I", run, 8)[0]
    base: Result = {"api_version": api}
    if reason != KVM_EXIT_IO:
        return {**base, "ok": False, "detail": f"the toy guest exited with reason {reason}"}
    _, _, port, _, offset = struct.unpack_from("BBHIQ", run, 32)
    if (port, run[offset]) != (PORT, MAGIC):
        return {**base, "ok": False, "detail": f"the toy guest wrote {run[offset]} to {port:#x}"}
    return {**base, "ok": True, "detail": "a long-mode toy guest ran to its port write"}


PROBES: dict[str, Callable[[list[str]], Result]] = {
    "userns": probe_userns,
    "overlay": probe_overlay,
    "seccomp": probe_seccomp,
    "kvm": probe_kvm,
}


def main(argv: list[str]) -> int:
    try:
        result = PROBES[argv[0]](argv[1:])
    except (SandboxError, OSError) as e:
        result = {"ok": False, "detail": str(e)}
    # os.write, not print: after the seccomp probe, fewer syscalls is safer.
    os.write(1, json.dumps(result).encode() + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
