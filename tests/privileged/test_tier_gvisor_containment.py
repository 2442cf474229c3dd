"""The container tier's hostile syscall programs on the gVisor tier. The Sentry answers them
itself: many with ENOSYS or another errno where seccomp says EPERM, and some (namespaces,
ptrace of an own child, io_uring) are emulated and succeed, acting on the Sentry's own
objects only. Each outcome below is the one gVisor gives; the host must not change."""

from __future__ import annotations

import dataclasses

import pytest

from sandbox.launcher import Launcher
from sandbox.result import Status
from sandbox.spec import BoxSpec, FileIn
from tests.privileged import hostile_util as hu
from tests.privileged.test_hostile_syscalls import SECCOMP_CLASSES, _host_files
from tests.privileged.test_tier_gvisor import gvisor_usable, nothing_left

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
elves = hu.elves
__all__ = ["gvisor_usable", "nothing_left"]  # the probe and the leftover check, autouse

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
}


def test_hostile_syscall_classes_are_contained(launcher: Launcher, elves: dict[str, bytes]) -> None:
    """Every program of the container tier's seccomp classes, all in one box (the Sentry
    boots once), each key checked against gVisor's answer, the host unchanged after."""
    names = [p.values[0] for p in SECCOMP_CLASSES]
    keys = [k for p in SECCOMP_CLASSES for k in p.values[1]]
    before = _host_files()
    script = "; ".join(f"/box/{n}; echo {n}_rc=$?" for n in names)
    files = tuple(FileIn(n, elves[n], 0o755) for n in names)
    lim = dataclasses.replace(hu.TIGHT, cpu_time_s=10.0, wall_time_s=30.0)
    box = BoxSpec(argv=("/bin/sh", "-c", script), files=files, limits=lim, tier="gvisor")
    r = launcher.run(box)
    assert r.status is Status.OK, hu.describe(r)
    out = hu.kv(r)
    # No program died of a signal: gVisor answers, it does not kill (seccomp's KILL_PROCESS
    # for a foreign ABI is the container tier's; x32 and int80 are not in these classes).
    assert all(out.get(f"{n}_rc") == "0" for n in names), hu.describe(r)
    wrong = [
        f"{k}={out.get(k, '<missing>')} (expected {GVISOR_OUTCOMES.get(k, E)})"
        for k in keys
        if out.get(k) != GVISOR_OUTCOMES.get(k, E)
    ]
    assert not wrong, wrong
    assert _host_files() == before
    # What the Sentry let through (unshare, clone of namespaces) changed nothing on the
    # host: the box's processes are all gone (checked by nothing_left), and so is the box.
