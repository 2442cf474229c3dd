"""Seccomp profiles and compiler without root: parsing, validation, planning, and the BPF."""

from __future__ import annotations

import copy
import errno
import json
import operator
import struct
from pathlib import Path
from typing import Any

import pytest

from sandbox import seccomp
from sandbox.errors import SandboxError
from sandbox.seccomp import RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, ArgCmp, Plan, ProfileError

EPERM = RET_ERRNO | errno.EPERM
ENOSYS = RET_ERRNO | errno.ENOSYS
X86_64, I386 = 0xC000003E, 0x40000003  # AUDIT_ARCH_*
X32_BIT = 0x40000000
NS_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
THREAD_FLAGS = 0x3D0F00  # what glibc's pthread_create passes to clone
FORK_FLAGS = 0x01200011  # CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD
TIOCSTI, TCGETS, FIONREAD = 0x5412, 0x5401, 0x541B
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_TIPC, AF_VSOCK = 1, 2, 10, 16, 17, 30, 40
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET = 1, 2, 3, 5
IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_MPTCP = 6, 17, 132, 262
SOL_IP, SOL_SOCKET, SOL_TCP, SOL_UDP, SOL_IPV6, SOL_TLS = 0, 1, 6, 17, 41, 282
# SO_ATTACH_FILTER, SO_ATTACH_BPF, SO_ATTACH_REUSEPORT_CBPF, SO_ATTACH_REUSEPORT_EBPF
SOCKET_FILTERS = (26, 50, 51, 52)
TCP_ULP = 31
# The classes both profiles must close (the brief's list; denied with EPERM, never allowed).
CLOSED = [
    *("mount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount", "fsconfig", "fspick"),
    *("move_mount", "open_tree", "mount_setattr", "unshare", "setns"),
    *("keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd"),
    *("io_uring_setup", "io_uring_enter", "io_uring_register"),
    *("ptrace", "process_vm_readv", "process_vm_writev", "kcmp"),
    *("init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot"),
    *("settimeofday", "clock_settime", "clock_adjtime", "adjtimex"),
    *("open_by_handle_at", "name_to_handle_at", "swapon", "swapoff", "acct", "quotactl"),
    *("lookup_dcookie", "vhangup", "iopl", "ioperm", "syslog", "uselib", "sysfs", "_sysctl"),
    *("nfsservctl", "fanotify_init"),
]
# What C, C++, Python, the JVM, V8, Go, Rust and shells call (strace of each under "run").
NEEDED = [
    *("read", "write", "openat", "close", "mmap", "mprotect", "munmap", "brk", "madvise"),
    *("futex", "set_robust_list", "rseq", "membarrier", "sched_getaffinity", "sched_yield"),
    *("execve", "fork", "vfork", "wait4", "pipe2", "dup2", "epoll_create1", "epoll_ctl"),
    *("epoll_pwait", "eventfd2", "timerfd_create", "signalfd4", "getrandom", "prlimit64"),
    *("rt_sigaction", "rt_sigprocmask", "sigaltstack", "tgkill", "clock_nanosleep", "statx"),
    *("bind", "listen", "accept4", "connect", "sendto", "recvfrom", "uname"),
]
PROFILES = ("run", "compile")


def nr(name: str) -> int:
    return seccomp._resolve(name)


@pytest.fixture(scope="module", params=PROFILES)
def plan(request: pytest.FixtureRequest) -> Plan:
    return seccomp.plan_rules(seccomp.load_profile(request.param), nr)


@pytest.fixture(scope="module", params=PROFILES)
def bpf(request: pytest.FixtureRequest) -> bytes:
    return seccomp.compile_profile(seccomp.load_profile(request.param))


def decide(plan: Plan, name: str, *args: int) -> int:
    """What the plan does for one call, with libseccomp's 64-bit comparisons."""
    full = list(args) + [0] * (6 - len(args))
    for rule in plan.rules:
        if rule.nr == nr(name) and all(holds(a, full[a.index]) for a in rule.args):
            return rule.action
    return plan.default_action


def holds(a: ArgCmp, x: int) -> bool:
    if a.op == seccomp.MASKED_EQ:
        return (x & a.value) == a.value_two
    compare = (operator.ne, operator.lt, operator.le, operator.eq, operator.ge, operator.gt)
    return bool(compare[a.op - 1](x, a.value))


def arg(index: int, value: int, op: str = "EQ", **extra: int) -> dict[str, Any]:
    return {"index": index, "value": value, "op": f"SCMP_CMP_{op}"} | extra


def run_bpf(prog: bytes, nr_: int, args: tuple[int, ...] = (), arch: int = X86_64) -> int:
    """A classic-BPF interpreter for the opcodes libseccomp emits, over struct seccomp_data."""
    full = list(args) + [0] * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr_, arch, 0, *full)
    insns = [struct.unpack_from("<HBBI", prog, i) for i in range(0, len(prog), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:  # and #k
            acc &= k
        elif code in (0x15, 0x25, 0x35, 0x45):  # jeq, jgt, jge, jset
            hit = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if hit else jf
        elif code == 0x06:  # ret #k
            return int(k)
        else:
            raise AssertionError(f"unexpected BPF opcode {code:#x}")


def test_profiles_load_without_warnings(plan: Plan) -> None:
    assert plan.warnings == ()
    assert plan.default_action == EPERM


def test_profiles_compile_to_bounded_bpf(bpf: bytes) -> None:
    assert len(bpf) % 8 == 0
    assert 0 < len(bpf) // 8 < 1024


@pytest.mark.parametrize("name", CLOSED)
def test_closed_syscalls_are_denied(plan: Plan, name: str) -> None:
    assert nr(name) >= 0, f"{name} must be a real x86_64 syscall, or the check is vacuous"
    assert all(r.action != RET_ALLOW for r in plan.rules if r.nr == nr(name))
    assert decide(plan, name, 0, 0, 0) == EPERM


@pytest.mark.parametrize("name", NEEDED)
def test_what_runtimes_need_is_allowed(plan: Plan, name: str) -> None:
    assert decide(plan, name, 0, 0, 0) == RET_ALLOW


def test_clone3_is_enosys_so_glibc_falls_back(plan: Plan) -> None:
    assert decide(plan, "clone3", 0, 88) == ENOSYS


@pytest.mark.parametrize("flag", sorted(NS_FLAGS))
def test_clone_with_a_namespace_flag_is_denied(plan: Plan, flag: str) -> None:
    assert decide(plan, "clone", NS_FLAGS[flag] | 17) == EPERM
    assert decide(plan, "clone", NS_FLAGS[flag] | THREAD_FLAGS) == EPERM


def test_clone_for_threads_and_fork_is_allowed(plan: Plan) -> None:
    for flags in (THREAD_FLAGS, FORK_FLAGS, 17, 0xFFFFFFFF_00000000 | FORK_FLAGS):
        assert decide(plan, "clone", flags) == RET_ALLOW


def test_personality_allows_only_harmless_values(plan: Plan) -> None:
    for value in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert decide(plan, "personality", value) == RET_ALLOW
    for value in (0x0400000, 0x0040000, 0x0400008, 0x1_00000000):  # READ_IMPLIES_EXEC, ...
        assert decide(plan, "personality", value) == EPERM


def test_socket_families_and_types(plan: Plan) -> None:
    cloexec_nonblock = 0x80000 | 0x800
    for family in (1, 2, 10):
        assert decide(plan, "socket", family, 1 | cloexec_nonblock, 0) == RET_ALLOW
        assert decide(plan, "socket", family, 2, 0) == RET_ALLOW
        assert decide(plan, "socket", family, 3, 0) == EPERM  # SOCK_RAW
        assert decide(plan, "socket", family, 3 | cloexec_nonblock, 0) == EPERM
    for family in (16, 17, 40, 0x1_00000002):  # NETLINK, PACKET, VSOCK, AF_INET + high bits
        assert decide(plan, "socket", family, 1, 0) == EPERM
    assert decide(plan, "socket", 2, 10, 0) == EPERM  # SOCK_PACKET
    assert decide(plan, "socket", 2, 1, 132) == EPERM  # IPPROTO_SCTP would autoload a module
    assert decide(plan, "socket", 2, 1, 6) == RET_ALLOW


def test_socketpair_is_held_to_the_socket_triples(plan: Plan) -> None:
    """socketpair makes its two sockets before the family says it cannot pair them, so it
    must refuse every (family, type, protocol) that socket() refuses."""
    for t in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM | 0x80000):
        assert decide(plan, "socketpair", AF_UNIX, t, 0) == RET_ALLOW
    for args in (
        (AF_NETLINK, SOCK_RAW, 0),
        (AF_NETLINK, SOCK_DGRAM, 0),
        (AF_VSOCK, SOCK_STREAM, 0),
        (AF_VSOCK, SOCK_DGRAM, 0),
        (AF_INET, SOCK_STREAM, IPPROTO_MPTCP),
        (AF_INET, SOCK_STREAM, IPPROTO_SCTP),
        (AF_TIPC, SOCK_SEQPACKET, 0),
        (AF_PACKET, SOCK_RAW, 0),
        (AF_UNIX, SOCK_RAW, 0),
        (1 << 32 | AF_UNIX, SOCK_STREAM, 0),
    ):
        assert decide(plan, "socketpair", *args) == EPERM, args
    for family in range(48):
        for t in (SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET, 10):
            for proto in (0, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_MPTCP):
                want = decide(plan, "socket", family, t, proto)
                assert decide(plan, "socketpair", family, t, proto) == want


def setsockopt_allowed(level: int, option: int) -> bool:
    """The rule the profiles hold setsockopt to, written out plainly."""
    if level in (SOL_IP, SOL_UDP, SOL_IPV6):
        return True
    if level == SOL_SOCKET:
        return option < 128 and option not in SOCKET_FILTERS
    if level == SOL_TCP:
        return option < 128 and option != TCP_ULP
    return False


def test_setsockopt_refuses_socket_filters_and_tcp_ulp(plan: Plan) -> None:
    for option in SOCKET_FILTERS:
        assert decide(plan, "setsockopt", 3, SOL_SOCKET, option) == EPERM
    assert decide(plan, "setsockopt", 3, SOL_TCP, TCP_ULP) == EPERM
    # The kernel reads level and option as ints: junk in the high half is refused, not
    # truncated into an allowed call.
    for level, option in ((1 << 32 | SOL_SOCKET, 2), (SOL_SOCKET, 1 << 32 | 2), (2**64 - 1, 2)):
        assert decide(plan, "setsockopt", 3, level, option) == EPERM
    assert decide(plan, "setsockopt", 3, SOL_TLS, 1) == EPERM
    # SO_REUSEADDR, SO_KEEPALIVE, SO_RCVTIMEO_NEW, TCP_NODELAY, TCP_KEEPIDLE, IPV6_V6ONLY,
    # IP_TOS, UDP_SEGMENT: what runtimes set.
    for level, option in ((1, 2), (1, 9), (1, 66), (6, 1), (6, 4), (41, 26), (0, 1), (17, 103)):
        assert decide(plan, "setsockopt", 3, level, option) == RET_ALLOW
    for level in (*range(48), SOL_TLS):
        for option in range(140):
            want = RET_ALLOW if setsockopt_allowed(level, option) else EPERM
            assert decide(plan, "setsockopt", 3, level, option) == want, (level, option)


def test_ioctl_tiocsti_is_denied_even_with_high_bits(plan: Plan) -> None:
    for cmd in (TIOCSTI, 0x1_00000000 | TIOCSTI, 0xFFFFFFFF_00000000 | TIOCSTI):
        assert decide(plan, "ioctl", 0, cmd) == EPERM
    for cmd in (TCGETS, FIONREAD, 0xFFFFFFFF_80045430, TIOCSTI ^ 1, TIOCSTI ^ 0x80000000):
        assert decide(plan, "ioctl", 0, cmd) == RET_ALLOW


def test_compile_profile_is_wider_than_run() -> None:
    run, comp = (seccomp.plan_rules(seccomp.load_profile(n), nr) for n in PROFILES)
    allowed = [{r.nr for r in p.rules if r.action == RET_ALLOW and not r.args} for p in (run, comp)]
    assert allowed[0] < allowed[1]
    assert nr("chown") in allowed[1] - allowed[0]


def test_bpf_kills_foreign_arch_and_x32(bpf: bytes) -> None:
    assert run_bpf(bpf, 20, arch=I386) == RET_KILL_PROCESS  # i386 getpid
    assert run_bpf(bpf, X32_BIT | 39) == RET_KILL_PROCESS  # x32 getpid
    assert run_bpf(bpf, X32_BIT | nr("unshare")) == RET_KILL_PROCESS


def test_bpf_agrees_with_the_plan(bpf: bytes) -> None:
    assert run_bpf(bpf, nr("getpid")) == RET_ALLOW
    assert run_bpf(bpf, nr("unshare"), (0x20000,)) == EPERM
    assert run_bpf(bpf, nr("clone"), (NS_FLAGS["CLONE_NEWUSER"] | 17,)) == EPERM
    assert run_bpf(bpf, nr("clone"), (THREAD_FLAGS,)) == RET_ALLOW
    assert run_bpf(bpf, nr("clone3"), (0, 88)) == ENOSYS
    assert run_bpf(bpf, nr("ioctl"), (1, 0x1_00000000 | TIOCSTI)) == EPERM
    assert run_bpf(bpf, nr("ioctl"), (1, TCGETS)) == RET_ALLOW
    assert run_bpf(bpf, nr("socket"), (17, 3, 0)) == EPERM
    assert run_bpf(bpf, nr("socketpair"), (AF_NETLINK, SOCK_RAW, 0)) == EPERM
    assert run_bpf(bpf, nr("socketpair"), (AF_VSOCK, SOCK_STREAM, 0)) == EPERM
    assert run_bpf(bpf, nr("socketpair"), (AF_UNIX, SOCK_STREAM | 0x80000, 0)) == RET_ALLOW
    for level in (SOL_IP, SOL_SOCKET, SOL_TCP, SOL_UDP, SOL_IPV6, SOL_TLS, 1 << 32 | 1):
        for option in (*range(70), 1 << 32 | 26):
            want = RET_ALLOW if setsockopt_allowed(level, option) else EPERM
            assert run_bpf(bpf, nr("setsockopt"), (3, level, option)) == want, (level, option)
    assert run_bpf(bpf, 0xFFFF) == EPERM  # beyond any table: the default


# ---- parsing and planning on small profiles -------------------------------------------------


def mini(*syscalls: dict[str, Any], **top: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": list(syscalls),
    }
    return base | top


def allow(*names: str, **extra: Any) -> dict[str, Any]:
    return {"names": list(names), "action": "SCMP_ACT_ALLOW"} | extra


def write(tmp_path: Path, profile: object, name: str = "p") -> Path:
    path = tmp_path / "seccomp" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(profile if isinstance(profile, str) else json.dumps(profile))
    return path


@pytest.mark.parametrize(
    ("profile", "field", "words"),
    [
        (mini(allow("read"), defaultAction="SCMP_ACT_NOPE"), "defaultAction", "unknown action"),
        (mini({"names": ["read"], "action": "SCMP_ACT_BOGUS"}), "syscalls[0].action", "unknown"),
        (mini({"names": ["read"], "action": "SCMP_ACT_TRACE"}), "syscalls[0].action", "tracer"),
        (mini(allow("read", errnoRet=1)), "syscalls[0].action", "errnoRet"),
        (mini(allow()), "syscalls[0].names", "non-empty"),
        (mini(allow("read", names=["read", 7])), "syscalls[0].names[1]", "syscall name"),
        (mini({"action": "SCMP_ACT_ALLOW"}), "syscalls[0].names", "missing"),
        (mini(allow("read", nmae=1)), "syscalls[0].nmae", "unknown field"),
        (mini(allow("read"), architectures=["SCMP_ARCH_X86"]), "architectures", "X86_64"),
        (mini(allow("read"), defaultErrnoRet=70000), "defaultErrnoRet", "integer"),
        (mini(allow("read", args=[arg(6, 1)])), "syscalls[0].args[0].index", "[0, 5]"),
        (mini(allow("read", args=[arg(0, 1, "SAME")])), "syscalls[0].args[0].op", "operator"),
        (mini(allow("read", args=[arg(0, True)])), "syscalls[0].args[0].value", "integer"),
        (
            mini(allow("read", args=[arg(0, 0xF, "MASKED_EQ", valueTwo=0x10)])),
            "syscalls[0].args[0].valueTwo",
            "never match",
        ),
        ([1, 2], "", "expected an object"),
        ({"syscalls": []}, "architectures", "missing"),
    ],
)
def test_bad_profiles_name_file_and_field(
    tmp_path: Path, profile: object, field: str, words: str
) -> None:
    path = write(tmp_path, profile)
    with pytest.raises(ProfileError) as err:
        seccomp.load_profile("p", tmp_path)
    assert str(err.value).startswith(f"{path}: {field}: ")
    assert words in str(err.value)


def test_unreadable_and_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"missing\.json: cannot read"):
        seccomp.load_profile(str(tmp_path / "missing.json"))
    path = write(tmp_path, "{not json")
    with pytest.raises(ProfileError, match=r"p\.json: not JSON: line 1 column 2"):
        seccomp.load_profile(str(path))


def test_unknown_and_foreign_names_are_skipped_with_a_warning() -> None:
    plan = seccomp.plan_rules(mini(allow("read", "no_such_call", "socketcall")), nr)
    assert [r.syscall for r in plan.rules] == ["read"]
    assert plan.warnings == (
        "syscalls[0]: unknown syscall 'no_such_call' skipped",
        "syscalls[0]: not a syscall on x86_64 'socketcall' skipped",
    )


def test_args_on_distinct_indices_are_anded_repeated_ones_ored() -> None:
    eq = [arg(0, 1), arg(1, 2)]
    same = [arg(0, 1), arg(0, 2)]
    plan = seccomp.plan_rules(mini(allow("socket", args=eq), allow("personality", args=same)), nr)
    by_name = {n: [r for r in plan.rules if r.syscall == n] for n in ("socket", "personality")}
    assert [len(r.args) for r in by_name["socket"]] == [2]
    assert [len(r.args) for r in by_name["personality"]] == [1, 1]
    assert decide(plan, "personality", 2) == RET_ALLOW
    assert decide(plan, "socket", 1, 3) == EPERM


def test_rules_equal_to_the_default_action_are_dropped() -> None:
    deny = {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    plan = seccomp.plan_rules(mini(allow("read"), deny), nr)
    assert [r.syscall for r in plan.rules] == ["read"]


def test_unconditional_rule_and_other_action_is_a_conflict() -> None:
    deny = {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
    deny["args"] = [arg(1, TIOCSTI)]
    with pytest.raises(ProfileError, match=r"'ioctl'.*unconditional"):
        seccomp.plan_rules(mini(allow("ioctl"), deny), nr)


def test_kill_means_kill_process_and_errno_defaults_to_eperm() -> None:
    prof = mini(
        {"names": ["ptrace"], "action": "SCMP_ACT_KILL"},
        {"names": ["bpf"], "action": "SCMP_ACT_ERRNO"},
        defaultAction="SCMP_ACT_ALLOW",
    )
    plan = seccomp.plan_rules(prof, nr)
    assert decide(plan, "ptrace") == RET_KILL_PROCESS
    assert decide(plan, "bpf") == EPERM
    assert plan.default_action == RET_ALLOW


def test_filter_for_compiles_once_per_name(tmp_path: Path) -> None:
    write(tmp_path, mini(allow("read", "write", "exit_group")), "tiny")
    first = seccomp.filter_for("tiny", tmp_path)
    assert seccomp.filter_for("tiny", tmp_path) is first
    assert first.instructions == len(first.bpf) // 8
    assert seccomp.filter_for("run") is not first


def test_compiled_filter_rejects_malformed_bpf() -> None:
    with pytest.raises(SandboxError, match="seccomp: load BPF"):
        seccomp.CompiledFilter("x", b"\x06\x00\x00\x00")


def test_profile_dict_is_not_modified() -> None:
    prof = seccomp.load_profile("run")
    before = copy.deepcopy(prof)
    seccomp.compile_profile(prof)
    assert prof == before
