"""The box's own failures: status XX naming the step and the syscall, and nothing left behind."""

from __future__ import annotations

import os

import pytest

from sandbox.errors import SpecError
from sandbox.launcher import Launcher
from sandbox.result import Status
from sandbox.spec import MIB, BoxSpec, FileIn, Limits

pytestmark = pytest.mark.privileged

SLOT_UIDS = range(60000, 60064)


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _box_processes(launcher: Launcher) -> set[int]:
    """Processes of this launcher's boxes (descendants of its zygote) that are not warm
    inits waiting for a request; other launchers on the host are not ours to judge."""
    zygote = launcher.container.zygote.pid
    warm = launcher.container.warm.pids()
    found = set()
    for name in filter(str.isdigit, os.listdir("/proc")):
        pid = int(name)
        try:
            if os.stat(f"/proc/{pid}").st_uid not in SLOT_UIDS or pid in warm:
                continue
            ancestor = pid
            while ancestor > 1 and ancestor != zygote:
                ancestor = _ppid(ancestor)
        except FileNotFoundError:
            continue
        if ancestor == zygote:
            found.add(pid)
    return found


def _our_cgroups() -> list[str]:
    """This process's box cgroups (named <launcher pid>-<n>); other launchers share stockade/."""
    base = "/sys/fs/cgroup/memory/stockade"
    return [d for d in os.listdir(base) if d.startswith(f"{os.getpid()}-")]


def test_setup_failure_is_xx_naming_step_and_syscall(launcher: Launcher) -> None:
    # 2 MiB of files into a 1 MiB scratch layer: placing them fails inside the box's setup.
    spec = BoxSpec(
        argv=("/bin/true",),
        files=(FileIn("big", b"x" * (2 * MIB)),),
        limits=Limits(scratch_bytes=1 * MIB),
    )
    r = launcher.run(spec)
    assert r.status is Status.XX
    assert "files: write(/box/big): ENOSPC" in r.message
    launcher.settle()
    assert launcher.container.warm.wait_full()
    assert _box_processes(launcher) == set()
    assert len(_our_cgroups()) == len(launcher.container.warm.pids())  # only the warm boxes' own


def test_unknown_profile_is_a_spec_error_naming_the_field(launcher: Launcher) -> None:
    with pytest.raises(SpecError, match=r"profile: no usable seccomp profile 'nope'"):
        launcher.run(BoxSpec(argv=("/bin/true",), profile="nope"))


def test_profile_must_be_a_name_not_a_path(launcher: Launcher) -> None:
    with pytest.raises(SpecError, match=r"profile: '/etc/x\.json' must be a plain name"):
        launcher.run(BoxSpec(argv=("/bin/true",), profile="/etc/x.json"))


def test_missing_program_is_re_not_found(launcher: Launcher) -> None:
    r = launcher.run(BoxSpec(argv=("no-such-program",)))
    assert r.status is Status.RE
    assert "not found" in r.message


def test_box_after_a_failure_works(launcher: Launcher) -> None:
    r = launcher.run(BoxSpec(argv=("/bin/sh", "-c", "echo fine")))
    assert (r.status, r.stdout) == (Status.OK, b"fine\n")


def test_a_killed_zygote_is_started_again(launcher: Launcher) -> None:
    import signal as sig

    launcher.container.warm.wait_full()
    old = launcher.container.zygote.pid
    os.kill(old, sig.SIGKILL)
    os.waitpid(old, 0)
    # Warm inits die with their zygote (parent-death signal); the next boxes come from a new one.
    for _ in range(3):
        r = launcher.run(BoxSpec(argv=("/bin/sh", "-c", "echo again")))
        if r.status is Status.OK:
            break
    assert (r.status, r.stdout) == (Status.OK, b"again\n"), r.message
    assert launcher.container.zygote.pid != old
