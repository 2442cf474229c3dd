"""The compiled seccomp filters on the real kernel: probes in a forked child under the filter."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox import seccomp
from sandbox import syscalls as sc
from sandbox.errors import SandboxError

pytestmark = pytest.mark.privileged

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = [ctypes.c_long] * 7
SYS = {"clone": 56, "clone3": 435, "ptrace": 101, "keyctl": 250, "personality": 135}
SYS |= {"socket": 41, "io_uring_setup": 425, "unshare": 272, "mount": 165, "ioctl": 16}
SYS |= {"socketpair": 53, "setsockopt": 54}
AF_UNIX, AF_INET, AF_NETLINK, AF_VSOCK = 1, 2, 16, 40
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3
IPPROTO_TCP, IPPROTO_MPTCP = 6, 262
SOL_SOCKET, SO_ATTACH_FILTER, TCP_ULP = 1, 26, 31
CLONE_NEWNS, CLONE_NEWUSER, SIGCHLD = 0x20000, 0x10000000, 17
TIOCSTI, TCGETS = 0x5412, 0x5401
READ_IMPLIES_EXEC = 0x0400000
EXIT_SYSCALL_RETURNED = 3


def _seccomp_available() -> str:
    try:
        actions = Path("/proc/sys/kernel/seccomp/actions_avail").read_text().split()
    except OSError:
        return "the kernel has no seccomp filter mode (CONFIG_SECCOMP_FILTER)"
    return "" if "kill_process" in actions else "the kernel lacks SECCOMP_RET_KILL_PROCESS"


if os.geteuid() != 0:
    pytest.skip("needs root: the probes compare with what root could do", allow_module_level=True)
if reason := _seccomp_available():
    pytest.skip(reason, allow_module_level=True)


def raw(name: str, *args: int) -> int:
    """Call a syscall by number: the result, or -errno."""
    full = list(args) + [0] * (6 - len(args))
    ret = libc.syscall(SYS[name], *full)
    return -ctypes.get_errno() if ret == -1 else int(ret)


def in_child(body: Callable[[], object], profile: str | None = "run") -> tuple[int, object]:
    """Fork; in a private mount namespace (so a leaking probe cannot touch the host's
    mounts) set no_new_privs, install the filter, run body; return (wait status, result)."""
    flt = seccomp.filter_for(profile) if profile else None
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
            if flt:
                flt.install()
            os.write(w, json.dumps(body()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    return status, json.loads(data) if data else None


def probes() -> dict[str, int]:
    """Each probe's result (or -errno); what root may do without a filter, bar the last ones."""
    out: dict[str, int] = {}
    out["unshare(CLONE_NEWNS)"] = raw("unshare", CLONE_NEWNS)
    out["mount(tmpfs)"] = -errno.EPERM if sc_mount_fails() else 0
    pid = raw("clone", CLONE_NEWUSER | SIGCHLD)
    if pid == 0:
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
    out["clone(CLONE_NEWUSER)"] = min(pid, 0)
    out["ptrace(PTRACE_TRACEME)"] = raw("ptrace", 0)
    out["keyctl(GET_KEYRING_ID)"] = min(raw("keyctl", 0, 2**64 - 3, 0), 0)
    out["personality(READ_IMPLIES_EXEC)"] = min(raw("personality", READ_IMPLIES_EXEC), 0)
    fd = raw("socket", 17, 3, 0)  # AF_PACKET, SOCK_RAW
    out["socket(AF_PACKET)"] = min(fd, 0)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    fd2 = raw("io_uring_setup", 1, ctypes.addressof(params))
    out["io_uring_setup"] = min(fd2, 0)
    return out


def sc_mount_fails() -> bool:
    try:
        sc.mount("stockade-test", "/mnt", "tmpfs", 0, "size=1m")
    except SandboxError:
        return True
    sc.umount2("/mnt", sc.MNT_DETACH)
    return False


def test_closed_classes_fail_with_eperm_under_the_filter() -> None:
    status, free = in_child(probes, profile=None)
    assert os.waitstatus_to_exitcode(status) == 0
    status, boxed = in_child(probes)
    assert os.waitstatus_to_exitcode(status) == 0
    assert isinstance(free, dict) and isinstance(boxed, dict)
    for probe, result in boxed.items():
        assert result == -errno.EPERM, f"{probe} under the filter gave {result}"
    # Not vacuous: root without the filter could do each of these.
    assert {k: v for k, v in free.items() if v < 0} == {}


def test_ordinary_work_still_runs() -> None:
    def body() -> dict[str, object]:
        r, w = os.pipe()
        os.write(w, b"hi")
        child = os.fork()  # glibc: clone(SIGCHLD | CHILD_*TID)
        if child == 0:
            os._exit(7)
        _, st = os.waitpid(child, 0)
        seen: list[int] = []
        t = threading.Thread(target=lambda: seen.append(os.getpid()))  # clone3 -> clone
        t.start()
        t.join()
        tcp = raw("socket", 2, 1 | 0x80000, 0)
        os.close(tcp)
        return {
            "read": os.read(r, 2).decode(),
            "fork": os.waitstatus_to_exitcode(st),
            "thread": seen == [os.getpid()],
            "clone3": raw("clone3", 0, 88),
            "personality": raw("personality", 0xFFFFFFFF) >= 0,
            "tiocsti": raw("ioctl", r, TIOCSTI, 0),
            "tiocsti_high": raw("ioctl", r, 1 << 32 | TIOCSTI, 0),
            "tcgets": raw("ioctl", r, TCGETS, 0),
            "tcp": tcp >= 0,
        }

    status, got = in_child(body)
    assert os.waitstatus_to_exitcode(status) == 0
    assert got == {
        "read": "hi",
        "fork": 7,
        "thread": True,
        "clone3": -errno.ENOSYS,
        "personality": True,
        "tiocsti": -errno.EPERM,  # a pipe would say ENOTTY: the filter answered first
        "tiocsti_high": -errno.EPERM,
        "tcgets": -errno.ENOTTY,  # reached the kernel
        "tcp": True,
    }


ABI_PROGRAM = r"""
#define _GNU_SOURCE
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long r;
    if (argc > 1 && strcmp(argv[1], "i386") == 0)  /* getpid is 20 in the i386 table */
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
    else if (argc > 1 && strcmp(argv[1], "x32") == 0)
        r = syscall(0x40000000 | SYS_getpid);  /* ENOSYS on kernels without x32 */
    else
        return 2;
    (void)r;
    return 3;  /* the call returned: nothing killed the process */
}
"""


@pytest.fixture(scope="module")
def abi_binary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build the i386/x32 probe")
    workdir = tmp_path_factory.mktemp("abi")
    source, binary = workdir / "abi.c", workdir / "abi"
    source.write_text(ABI_PROGRAM)
    subprocess.run(["gcc", "-O0", "-o", str(binary), str(source)], check=True)
    yield binary
    shutil.rmtree(workdir)


def exec_in_child(argv: list[str], profile: str | None) -> int:
    def body() -> None:
        os.execv(argv[0], argv)

    status, _ = in_child(body, profile)
    return status


@pytest.mark.parametrize("abi", ["i386", "x32"])
def test_other_abis_are_killed(abi_binary: Path, abi: str) -> None:
    # Without the filter the call returns (i386 getpid works, x32 gives ENOSYS here).
    free = exec_in_child([str(abi_binary), abi], profile=None)
    assert os.waitstatus_to_exitcode(free) == EXIT_SYSCALL_RETURNED, f"unfiltered: {free:#x}"
    boxed = exec_in_child([str(abi_binary), abi], profile="run")
    assert os.WIFSIGNALED(boxed) and os.WTERMSIG(boxed) == signal.SIGSYS, f"status {boxed:#x}"


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def socket_probes() -> dict[str, int]:
    """socketpair in families socket() refuses, a socket filter, a TCP upper-layer protocol:
    each result or -errno. The last probe is the control, allowed with or without a filter."""
    pair = (ctypes.c_int * 2)()
    out: dict[str, int] = {}
    for name, family, kind, proto in (
        ("socketpair(AF_NETLINK)", AF_NETLINK, SOCK_RAW, 0),
        ("socketpair(AF_VSOCK)", AF_VSOCK, SOCK_STREAM, 0),
        ("socketpair(IPPROTO_MPTCP)", AF_INET, SOCK_STREAM, IPPROTO_MPTCP),
    ):
        out[name] = min(raw("socketpair", family, kind, proto, ctypes.addressof(pair)), 0)
    accept_all = ctypes.c_uint64(0x0000FFFF_00000006)  # struct sock_filter {BPF_RET|BPF_K, 0xffff}
    prog = SockFprog(1, ctypes.addressof(accept_all))
    udp = raw("socket", AF_INET, SOCK_DGRAM, 0)
    out["setsockopt(SO_ATTACH_FILTER)"] = raw(
        "setsockopt", udp, SOL_SOCKET, SO_ATTACH_FILTER, ctypes.addressof(prog), ctypes.sizeof(prog)
    )
    tcp = raw("socket", AF_INET, SOCK_STREAM, 0)
    ulp = ctypes.create_string_buffer(b"tls")
    out["setsockopt(TCP_ULP)"] = raw(
        "setsockopt", tcp, IPPROTO_TCP, TCP_ULP, ctypes.addressof(ulp), 3
    )
    out["socketpair(AF_UNIX)"] = raw("socketpair", AF_UNIX, SOCK_STREAM, 0, ctypes.addressof(pair))
    return out


def test_socketpair_families_socket_filters_and_tcp_ulp_are_refused() -> None:
    status, free = in_child(socket_probes, profile=None)
    assert os.waitstatus_to_exitcode(status) == 0
    status, boxed = in_child(socket_probes)
    assert os.waitstatus_to_exitcode(status) == 0
    assert isinstance(free, dict) and isinstance(boxed, dict)
    control = "socketpair(AF_UNIX)"
    assert free[control] == boxed[control] == 0
    for probe, result in boxed.items():
        if probe != control:
            assert result == -errno.EPERM, f"{probe} under the filter gave {result}"
    # Not vacuous: without the filter each call reached the kernel, which made the sockets
    # (socketpair's EOPNOTSUPP comes after both were created), attached the filter, or
    # looked the ULP up (ENOENT: this kernel has no kTLS); never EPERM.
    assert free["setsockopt(SO_ATTACH_FILTER)"] == 0
    assert -errno.EPERM not in free.values(), free


def test_install_failure_names_step_and_syscall() -> None:
    bad = seccomp.CompiledFilter("bad", b"\xff\xff\x00\x00\x00\x00\x00\x00")  # no such opcode

    def body() -> list[object]:
        try:
            bad.install()
        except SandboxError as e:
            return [e.step, e.syscall, e.errno]
        return []

    _, got = in_child(body, profile=None)
    assert got == ["seccomp", "prctl(PR_SET_SECCOMP)", errno.EINVAL]
