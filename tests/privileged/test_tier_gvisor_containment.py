"""The container tier's hostile programs on the gVisor tier: the shared runner (several
probes in one box, so the Sentry boots once), the host check after each test, and the
syscall probes. The Sentry answers syscalls itself: many with ENOSYS or another errno where
seccomp says EPERM, and some (namespaces, ptrace of an own child, io_uring) are emulated
and succeed, acting on the Sentry's own objects only. Each outcome below is gVisor's."""

from __future__ import annotations

import dataclasses
import secrets
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec, FileIn, Limits
from tests.privileged import hostile_util as hu
from tests.privileged import test_hostile_syscalls as sy
from tests.privileged.test_tier_gvisor import gvisor_usable, nothing_left

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
elves = hu.elves
__all__ = ["gvisor_usable", "nothing_left"]  # the probe and the leftover check, autouse

# ---------- several hostile programs in one gVisor box ----------

GROUP_LIMITS = dataclasses.replace(hu.TIGHT, cpu_time_s=10.0, wall_time_s=30.0)


@dataclass(frozen=True)
class Probe:
    """One container-tier hostile program: Python source (hostile_util's prelude is added)
    or a compiled hostile/*.c by name, with its arguments and stdin."""

    name: str
    code: str = ""
    elf: str = ""
    args: tuple[str, ...] = ()
    stdin: bytes = b""


def group_box(probes: list[Probe], elves: dict[str, bytes], **spec: Any) -> BoxSpec:
    """/bin/sh runs /box/group.sh (so pid 1's command line names no probe's arguments):
    each probe in turn, its output in /box/out/<name> (collected), `<name>_rc=$?` on
    stdout. The sandbox has no init of ours: sh is pid 1, each probe its child."""
    files: list[FileIn] = []
    lines = ["mkdir /box/out"]
    for p in probes:
        files.append(FileIn(f"in/{p.name}", p.stdin))
        if p.elf:
            files.append(FileIn(f"bin/{p.elf}", elves[p.elf], 0o755))
            argv = [f"/box/bin/{p.elf}"]
        else:
            files.append(FileIn(f"py/{p.name}.py", hu.py_program(p.code)))
            argv = [hu.PYTHON, f"/box/py/{p.name}.py"]
        cmd = " ".join(shlex.quote(a) for a in (*argv, *p.args))
        lines.append(f"{cmd} </box/in/{p.name} >/box/out/{p.name} 2>&1; echo {p.name}_rc=$?")
    files.append(FileIn("group.sh", "\n".join(lines).encode() + b"\n"))
    spec.setdefault("limits", GROUP_LIMITS)
    return BoxSpec(
        argv=("/bin/sh", "/box/group.sh"),
        files=(*files, *spec.pop("files", ())),
        collect=("out/", *spec.pop("collect", ())),
        tier="gvisor",
        **spec,
    )


def parse_kv(data: bytes) -> dict[str, str]:
    """hostile_util.kv for a probe's collected output."""
    out: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


@dataclass
class Group:
    """A group box's result, each probe's `key=value` lines and exit status."""

    result: BoxResult
    outs: dict[str, dict[str, str]]
    rcs: dict[str, str]

    def __getitem__(self, name: str) -> dict[str, str]:
        return self.outs[name]

    def describe(self, name: str) -> str:
        raw = self.result.files.get(f"/box/out/{name}", b"")
        return f"{name} rc={self.rcs[name]}:\n{raw.decode('utf-8', 'replace')}"


def run_group(
    launcher: Launcher, probes: list[Probe], elves: dict[str, bytes] | None = None, **spec: Any
) -> Group:
    r = launcher.run(group_box(probes, elves or {}, **spec))
    assert r.status is Status.OK, hu.describe(r)
    outs = {p.name: parse_kv(r.files.get(f"/box/out/{p.name}", b"")) for p in probes}
    rcs = {p.name: hu.kv(r).get(f"{p.name}_rc", "<missing>") for p in probes}
    return Group(r, outs, rcs)


def check_counts_descriptors_rlimits(g: Group, lim: Limits) -> None:
    """The forkcount, fdbomb and rlimits probes of a group run under `lim`, on a tier with
    no init of ours in the box: the group's sh and forkcount are the two tasks the pids
    limit counts besides the forks (a container box's init counts too)."""
    out = g["forkcount"]
    assert out["fork_error"] == "EAGAIN", g.describe("forkcount")
    assert int(out["forked"]) == lim.pids - 2, g.describe("forkcount")
    out = g["fdbomb"]
    assert out["error"] == "EMFILE", g.describe("fdbomb")
    assert int(out["start"]) + int(out["opened"]) == lim.nofile
    out = g["rlimits"]
    for name in ("RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_CORE"):
        assert out[name] == "refused", f"{name} was raised: {g.describe('rlimits')}"
    assert int(out["RLIMIT_NOFILE_now"]) == lim.nofile
    assert int(out["RLIMIT_FSIZE_now"]) == lim.fsize_bytes
    assert int(out["RLIMIT_CORE_now"]) == 0


# ---------- the host, before and after ----------


def _fingerprint(path: Path) -> tuple[bytes, int, int, int]:
    st = path.stat()
    return path.read_bytes(), st.st_mode, st.st_ino, st.st_mtime_ns


@pytest.fixture
def host_canaries() -> Iterator[list[Path]]:
    """Canaries in /root (0600) and /tmp (0644), and host files a leaking syscall would
    change: after the test all are as they were and runsc left nothing (nothing_left)."""
    tag = secrets.token_hex(6)
    made = []
    for where, mode in (("/root", 0o600), ("/tmp", 0o644)):
        path = Path(f"{where}/stockade-gvisor-canary-{tag}")
        path.write_text(f"canary {tag}\n")
        path.chmod(mode)
        made.append(path)
    watched = [Path("/etc/passwd"), Path("/usr/bin/su"), *made]
    before = [_fingerprint(p) for p in watched if p.exists()]
    host = sy._host_files()
    yield made
    try:
        assert [_fingerprint(p) for p in watched if p.exists()] == before
        assert sy._host_files() == host
        for p in made:
            assert sorted(p.parent.glob(p.name + "*")) == [p]
    finally:
        for path in made:
            path.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _host_unchanged(host_canaries: list[Path]) -> None:
    """Every test here runs with the canaries in place."""


# ---------- the syscall probes ----------

E = "EPERM"
# What runsc (2022, ptrace) answers, key by key, where that is not EPERM. "ok" = emulated
# inside the Sentry: a namespace, a ptrace or an io_uring of the Sentry's, not the host's.
GVISOR_OUTCOMES: dict[str, str] = {
    **dict.fromkeys(
        ("fsopen", "fspick", "open_tree", "move_mount", "fsconfig", "fsmount"), "ENOSYS"
    ),
    "mount_setattr": "ENOSYS",
    **dict.fromkeys(
        ("unshare_user", "unshare_mnt", "unshare_pid", "unshare_net", "unshare_uts"), "ok"
    ),
    **dict.fromkeys(("unshare_ipc", "unshare_cgroup", "unshare_time"), "ok"),
    **dict.fromkeys(("setns_mnt", "setns_uts", "setns_ipc", "setns_cgroup"), "ENOENT"),
    "setns_time": "ENOENT",
    **dict.fromkeys(("setns_net", "setns_pid", "setns_user"), "EOPNOTSUPP"),
    "setns_pidfd_init": "ENOSYS",
    **dict.fromkeys(
        ("clone_newuser", "clone_newns", "clone_newcgroup", "clone_newuser_highbits"), "ok"
    ),
    **dict.fromkeys(
        ("clone3_newuser", "clone3_newpid_net", "clone3_into_cgroup", "clone3_plain"), "ENOSYS"
    ),
    **dict.fromkeys(
        ("add_key", "request_key", "keyctl_get_id", "keyctl_join", "keyctl_search_user"),
        "EACCES",
    ),
    **dict.fromkeys(("perf_sw_self", "perf_hw_self", "perf_init"), "ENODEV"),
    **dict.fromkeys(("userfaultfd_user", "userfaultfd"), "ENOSYS"),
    "io_uring_setup": "ok",
    "io_uring_enter": "EBADF",
    "io_uring_register": "ENOSYS",
    "ptrace_peek_init": "ESRCH",
    "ptrace_attach_child": "ok",
    "ptrace_traceme": "ok",
    **dict.fromkeys(
        ("vm_readv_init", "vm_writev_init", "vm_readv_self", "pidfd_getfd_init"), "ENOSYS"
    ),
    "process_madvise_init": "ENOSYS",
    **dict.fromkeys(("name_to_handle_at", "open_by_handle_at"), "EOPNOTSUPP"),
    **dict.fromkeys(("read_implies_exec", "addr_no_randomize", "both", "highbits"), "EINVAL"),
    "sock_packet": "EPROTONOSUPPORT",
    "ping_socket": "ok",
    **dict.fromkeys(("tiocsti", "tiocsti_highbits", "tiocsti_stdout"), "ENOTTY"),
    # socket_ops: the Sentry's own netstack answers (--network=none), so no host socket is
    # made and no filter or ULP reaches the host kernel. It refuses to pair netlink (it has
    # its own netlink) and has no vsock, MPTCP or SCTP; it accepts a socket filter and
    # TCP_ULP and ignores both (its netstack runs no socket BPF and has no ULPs).
    **dict.fromkeys(
        ("socketpair_netlink", "socketpair_netlink_dgram", "socketpair_highbits"), "EOPNOTSUPP"
    ),
    "socketpair_vsock": "EAFNOSUPPORT",
    **dict.fromkeys(("socketpair_mptcp", "socketpair_sctp"), "ESOCKTNOSUPPORT"),
    **dict.fromkeys(
        ("attach_filter", "attach_filter_highbits", "attach_bpf", "attach_reuseport_cbpf"), "ok"
    ),
    **dict.fromkeys(("tcp_ulp", "tcp_ulp_highbits"), "ok"),
}
# test_hostile_syscalls's Python probes. AF_PACKET needs CAP_NET_RAW: EPERM as in a
# container; netlink sockets are the Sentry's own netstack (no host interface is in it:
# --network=none); the other families are not implemented (EAFNOSUPPORT, EINVAL for SCTP).
GVISOR_PACKET = {
    "af_packet_raw": "EPERM", "af_packet_dgram": "EPERM", "netlink_route": "ok",
    "netlink_dgram": "ok", "af_alg": "EAFNOSUPPORT", "af_vsock": "EAFNOSUPPORT",
    "af_key": "EAFNOSUPPORT", "sctp": "EINVAL",
}  # fmt: skip
# unshare(CLONE_NEWUSER) is emulated: the program then holds every capability, but in a
# user namespace of the Sentry's with no uid mapped (it reads back 65534), so setuid(0) and
# its kind are EINVAL and what the capabilities allow (chroot into /box) acts on the
# Sentry's view only. A second, nested namespace with a mount namespace is refused.
# pivot_root is EBUSY (the new root is the Sentry's root mount itself), mknod and mkfifo
# ENOENT (after the chroot, /box/... is gone from the view), sethostname EPERM (the UTS
# namespace belongs to the sandbox's first user namespace).
GVISOR_PRIVILEGED = {
    "unshare_newuser": "ok", "unshare_newuser_ns": "EPERM", "pivot_root": "EBUSY",
    "pivot_root_box": "EBUSY", "chroot": "ok", "mknod_mem": "ENOENT", "mknod_vda": "ENOENT",
    "mkfifo": "ENOENT", "sethostname": "EPERM", "setuid0": "EINVAL", "setresuid0": "EINVAL",
    "setgid0": "EINVAL", "setgroups0": "EINVAL", "hostname": "stockade", "uname": "stockade",
    "uid": "65534,65534", "mem_exists": "False",
}  # fmt: skip
CLASS_NAMES = [p.values[0] for p in sy.SECCOMP_CLASSES]


@pytest.fixture(scope="module")
def syscalls(launcher: Launcher, elves: dict[str, bytes]) -> Group:
    """Every program of test_hostile_syscalls.py in one box, with the host's files noted
    before and compared after (by the canary fixture of each test, and here)."""
    before = sy._host_files()
    probes = [Probe(n, elf=n) for n in [*CLASS_NAMES, "int80", "x32"]]
    probes += [Probe("packet", sy.PACKET_SOCKETS), Probe("privileged", sy.PRIVILEGED_PY)]
    g = run_group(launcher, probes, elves)
    assert sy._host_files() == before
    return g


def test_hostile_syscall_classes_are_contained(syscalls: Group) -> None:
    """Each key of the container tier's seccomp classes against gVisor's answer. No program
    died of a signal: gVisor answers, it does not kill (seccomp's KILL_PROCESS is the
    container tier's)."""
    assert all(syscalls.rcs[n] == "0" for n in CLASS_NAMES), syscalls.rcs
    wrong = [
        f"{n}.{k}={syscalls[n].get(k, '<missing>')} (expected {GVISOR_OUTCOMES.get(k, E)})"
        for p in sy.SECCOMP_CLASSES
        for n, keys in [p.values[:2]]
        for k in keys
        if syscalls[n].get(k) != GVISOR_OUTCOMES.get(k, E)
    ]
    assert not wrong, wrong


def test_controls_still_work(syscalls: Group) -> None:
    """The control calls of the same programs work: the refusals are the Sentry's."""
    assert syscalls["clone_ns"]["clone_plain"] == "ok"
    assert syscalls["raw_socket"]["tcp_control"] == "ok"
    assert syscalls["tiocsti"]["tcgets_control"] == "ENOTTY"
    for key in ("socketpair_unix_control", "reuseaddr_control", "nodelay_control"):
        assert syscalls["socket_ops"][key] == "ok", syscalls.describe("socket_ops")


def test_personality_unchanged_and_kallsyms_absent(syscalls: Group) -> None:
    # personality(0xffffffff), the query, is itself EINVAL here: gVisor knows PER_LINUX
    # only, so no flag weakening the program's ASLR or NX can be set (all EINVAL above).
    assert syscalls["personality"]["persona_now"] == "0xffffffffffffffff"
    # The Sentry's /proc has no kallsyms at all (the container tier masks the host's).
    assert "kallsyms_size" not in syscalls["mount_family"], syscalls.describe("mount_family")


def test_foreign_abi_is_contained(syscalls: Group) -> None:
    """int 0x80 and x32 syscall numbers: on the ptrace platform every syscall instruction
    of the program stops in the Sentry (PTRACE_SYSEMU) and never runs in the host kernel.
    The Sentry has no i386 or x32 table: the program survives with an error where the
    container tier's seccomp kills it with SIGSYS (getpid would have returned a pid > 0)."""
    for name, value in (("int80", "-9"), ("x32", "-1")):
        out = syscalls[name]
        assert syscalls.rcs[name] == "0", syscalls.describe(name)
        assert out.get("before") == "1" and out.get("survived") == value, syscalls.describe(name)


def test_packet_and_other_families(syscalls: Group) -> None:
    assert syscalls["packet"] == GVISOR_PACKET, syscalls.describe("packet")


def test_privileged_calls_from_python(syscalls: Group) -> None:
    assert Path("/proc/sys/kernel/hostname").read_text().strip() != "pwned"
    assert syscalls["privileged"] == GVISOR_PRIVILEGED, syscalls.describe("privileged")
