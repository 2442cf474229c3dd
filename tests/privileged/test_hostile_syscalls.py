"""Hostile programs against the seccomp allowlist: every closed class, the foreign ABIs, raw
and packet sockets, TIOCSTI and the privileged calls a box has no use for. Each program
prints what every attempt returned; the test checks the errno and then the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.launcher import Launcher
from sandbox.result import Status
from tests.privileged import hostile_util as hu

pytestmark = pytest.mark.privileged

elves = hu.elves
guard = hu.guard

EPERM = ("EPERM",)

# (program, keys it prints, accepted outcomes). Each is a separate hostile C program.
SECCOMP_CLASSES = [
    pytest.param(
        "mount_family",
        [
            "mount_tmpfs", "mount_proc", "mount_sysfs", "mount_cgroup", "mount_cgroup2",
            "mount_bind_root", "remount_usr_rw", "remount_root_rw", "make_shared",
            "umount_kallsyms_mask", "umount_proc_sys", "umount_usr", "fsopen", "fspick",
            "open_tree", "move_mount", "fsconfig", "fsmount", "mount_setattr",
            "pivot_root", "chroot",
        ],
        EPERM,
        id="mount-family",
    ),
    pytest.param(
        "unshare",
        [
            "unshare_user", "unshare_user_ns", "unshare_mnt", "unshare_pid", "unshare_net",
            "unshare_uts", "unshare_ipc", "unshare_cgroup", "unshare_time",
            "unshare_user_highbits",
        ],
        EPERM,
        id="unshare-every-namespace",
    ),
    pytest.param(
        "setns",
        [
            "setns_mnt", "setns_net", "setns_pid", "setns_user", "setns_uts", "setns_ipc",
            "setns_cgroup", "setns_time", "setns_pidfd_init",
        ],
        EPERM,
        id="setns",
    ),
    pytest.param(
        "clone_ns",
        [
            "clone_newuser", "clone_newns", "clone_newpid", "clone_newnet", "clone_newuts",
            "clone_newipc", "clone_newcgroup", "clone_newuser_highbits",
        ],
        EPERM,
        id="clone-namespace-flags",
    ),
    pytest.param(
        "clone3",
        ["clone3_newuser", "clone3_newpid_net", "clone3_into_cgroup", "clone3_plain"],
        ("ENOSYS",),
        id="clone3",
    ),
    pytest.param(
        "keyring",
        ["add_key", "request_key", "keyctl_get_id", "keyctl_join", "keyctl_search_user"],
        EPERM,
        id="keyrings",
    ),
    pytest.param("bpf", ["bpf_map_create", "bpf_prog_load"], EPERM, id="bpf"),
    pytest.param(
        "perf", ["perf_sw_self", "perf_hw_self", "perf_init"], EPERM, id="perf-event-open"
    ),
    pytest.param("userfaultfd", ["userfaultfd_user", "userfaultfd"], EPERM, id="userfaultfd"),
    pytest.param(
        "io_uring",
        ["io_uring_setup", "io_uring_enter", "io_uring_register"],
        EPERM,
        id="io-uring",
    ),
    pytest.param(
        "ptrace",
        [
            "ptrace_attach_init", "ptrace_seize_init", "ptrace_peek_init",
            "ptrace_attach_child", "ptrace_traceme",
        ],
        EPERM,
        id="ptrace",
    ),
    pytest.param(
        "process_vm",
        [
            "vm_readv_init", "vm_writev_init", "vm_readv_self", "pidfd_getfd_init",
            "process_madvise_init", "kcmp_init",
        ],
        EPERM,
        id="process-vm-and-pidfd-getfd",
    ),
    pytest.param(
        "modules",
        ["init_module", "finit_module", "delete_module", "delete_module_loop"],
        EPERM,
        id="kernel-modules",
    ),
    pytest.param(
        "kexec_reboot",
        ["kexec_load", "kexec_file_load", "reboot_cad_off"],
        EPERM,
        id="kexec-and-reboot",
    ),
    pytest.param(
        "clocks",
        ["settimeofday", "clock_settime", "adjtimex_read", "clock_adjtime_read"],
        EPERM,
        id="clock-setting",
    ),
    pytest.param(
        "handles", ["name_to_handle_at", "open_by_handle_at"], EPERM, id="open-by-handle-at"
    ),
    pytest.param(
        "personality",
        ["read_implies_exec", "addr_no_randomize", "both", "highbits"],
        EPERM,
        id="personality-read-implies-exec",
    ),
    pytest.param(
        "raw_socket",
        [
            "raw_icmp", "raw_ip", "raw_tcp_nonblock", "raw_icmpv6", "sock_packet",
            "ping_socket", "raw_highbits",
        ],
        EPERM,
        id="raw-sockets",
    ),
    pytest.param(
        "tiocsti", ["tiocsti", "tiocsti_highbits", "tiocsti_stdout"], EPERM, id="tiocsti"
    ),
    pytest.param(
        "socket_ops",
        [
            "socketpair_netlink", "socketpair_netlink_dgram", "socketpair_vsock",
            "socketpair_mptcp", "socketpair_sctp", "socketpair_highbits", "attach_filter",
            "attach_filter_highbits", "attach_bpf", "attach_reuseport_cbpf", "tcp_ulp",
            "tcp_ulp_highbits",
        ],
        EPERM,
        id="socketpair-families-socket-filters-tcp-ulp",
    ),
]  # fmt: skip


def _host_files() -> dict[str, bytes]:
    """Host state a leaking syscall of these classes would change."""
    paths = ["/proc/modules", "/proc/sys/kernel/ctrl-alt-del", "/proc/sys/kernel/hostname"]
    return {p: Path(p).read_bytes() for p in paths if Path(p).exists()}


@pytest.mark.parametrize(("name", "keys", "allowed"), SECCOMP_CLASSES)
def test_seccomp_class_is_closed(
    launcher: Launcher,
    elves: dict[str, bytes],
    guard: hu.HostGuard,
    name: str,
    keys: list[str],
    allowed: tuple[str, ...],
) -> None:
    before = _host_files()
    r = hu.run_c(launcher, elves, name)
    guard.check()
    assert _host_files() == before
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert not hu.all_denied(out, keys, allowed), hu.describe(r)


def test_controls_still_work(
    launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard
) -> None:
    """The same programs' control calls reach the kernel: the refusals above are the filter's."""
    names = ("clone_ns", "raw_socket", "tiocsti", "socket_ops")
    outs = {n: hu.kv(hu.run_c(launcher, elves, n)) for n in names}
    guard.check()
    assert outs["clone_ns"]["clone_plain"] == "ok"
    assert outs["raw_socket"]["tcp_control"] == "ok"
    assert outs["tiocsti"]["tcgets_control"] == "ENOTTY"
    for key in ("socketpair_unix_control", "reuseaddr_control", "nodelay_control"):
        assert outs["socket_ops"][key] == "ok", key


def test_personality_unchanged_and_masks_kept(
    launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard
) -> None:
    personality = hu.kv(hu.run_c(launcher, elves, "personality"))
    mounts = hu.kv(hu.run_c(launcher, elves, "mount_family"))
    guard.check()
    assert personality["persona_now"] in ("0", "0x0")
    assert mounts["kallsyms_size"] == "0"  # the /proc mask survived the umount attempt


@pytest.mark.parametrize("name", ["int80", "x32"], ids=["i386-int-0x80", "x32-abi"])
def test_foreign_abi_is_killed(
    launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard, name: str
) -> None:
    r = hu.run_c(launcher, elves, name)
    guard.check()
    assert r.status == Status.SG and r.signal == 31, hu.describe(r)
    out = hu.kv(r)
    assert out.get("before") == "1" and "survived" not in out, hu.describe(r)


PACKET_SOCKETS = """
import socket
attempt("af_packet_raw", socket.socket, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
attempt("af_packet_dgram", socket.socket, socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3))
attempt("netlink_route", socket.socket, socket.AF_NETLINK, socket.SOCK_RAW, 0)
attempt("netlink_dgram", socket.socket, socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
attempt("af_alg", socket.socket, socket.AF_ALG, socket.SOCK_SEQPACKET, 0)
attempt("af_vsock", socket.socket, socket.AF_VSOCK, socket.SOCK_STREAM, 0)
attempt("af_key", socket.socket, 15, socket.SOCK_RAW, 2)
attempt("sctp", socket.socket, socket.AF_INET, socket.SOCK_STREAM, 132)
"""


def test_packet_and_other_families_refused(launcher: Launcher, guard: hu.HostGuard) -> None:
    r = hu.run_py(launcher, PACKET_SOCKETS)
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    keys = [
        "af_packet_raw", "af_packet_dgram", "netlink_route", "netlink_dgram", "af_alg",
        "af_vsock", "af_key", "sctp",
    ]  # fmt: skip
    assert not hu.all_denied(hu.kv(r), keys, EPERM), hu.describe(r)


PRIVILEGED_PY = """
import socket, stat
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x20000
sys_attempt("unshare_newuser", 272, CLONE_NEWUSER)
sys_attempt("unshare_newuser_ns", 272, CLONE_NEWUSER | CLONE_NEWNS)
sys_attempt("pivot_root", 155, b".", b".")
os.chdir("/box")
sys_attempt("pivot_root_box", 155, b"/box", b"/box")
attempt("chroot", os.chroot, "/box")
attempt("mknod_mem", os.mknod, "/box/mem", stat.S_IFCHR | 0o666, os.makedev(1, 1))
attempt("mknod_vda", os.mknod, "/box/vda", stat.S_IFBLK | 0o666, os.makedev(254, 0))
attempt("mkfifo", os.mkfifo, "/box/fifo")
attempt("sethostname", socket.sethostname, "pwned")
attempt("setuid0", os.setuid, 0)
attempt("setresuid0", os.setresuid, 0, 0, 0)
attempt("setgid0", os.setgid, 0)
attempt("setgroups0", os.setgroups, [0])
say("hostname", socket.gethostname())
say("uname", os.uname().nodename)
say("uid", "%d,%d" % (os.getuid(), os.geteuid()))
say("mem_exists", os.path.exists("/box/mem"))
"""


def test_privileged_calls_from_python(launcher: Launcher, guard: hu.HostGuard) -> None:
    """unshare(CLONE_NEWUSER) for capabilities, pivot_root, chroot, mknod, sethostname and
    setuid(0), made by a Python program through ctypes and os."""
    host_name = Path("/proc/sys/kernel/hostname").read_text()
    r = hu.run_py(launcher, PRIVILEGED_PY)
    guard.check()
    assert Path("/proc/sys/kernel/hostname").read_text() == host_name
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    keys = [
        "unshare_newuser", "unshare_newuser_ns", "pivot_root", "pivot_root_box", "chroot",
        "mknod_mem", "mknod_vda", "mkfifo", "sethostname", "setuid0", "setresuid0", "setgid0",
        "setgroups0",
    ]  # fmt: skip
    assert not hu.all_denied(out, keys, EPERM), hu.describe(r)
    assert out["hostname"] == out["uname"] == "stockade"
    uid, euid = (int(x) for x in out["uid"].split(","))
    assert uid == euid and uid >= 60000
    assert out["mem_exists"] == "False"
