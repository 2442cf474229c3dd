"""Run in the lab only (make test-v2): box cgroups on a real systemd host with cgroup2 land
in the worker's delegated subtree, a non-delegated scope is refused with the fix, and a
private cgroup namespace behaves as deploy/docker/worker-entrypoint.sh intends."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from sandbox.cgroups import CgroupLimits, parse_mountinfo, probe
from sandbox.cgroups.delegation import LEAF, own_cgroup, unit_of
from sandbox.launcher import Launcher
from sandbox.result import Status
from sandbox.spec import BoxSpec, FileIn, Limits
from tests.privileged import test_tier_gvisor_cpu as gv
from tests.privileged.test_tier_gvisor import gvisor_usable

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(
        os.environ.get("STOCKADE_IN_V2LAB") != "1",
        reason="needs the cgroup2 lab under systemd (make test-v2)",
    ),
]
__all__ = ["gvisor_usable"]
CHECKOUT = Path(__file__).resolve().parents[2]
MOUNT = "/sys/fs/cgroup"
# Made in a child, so that the child's own cgroup moves, not the test runner's.
SHOW_BOX = (
    "from sandbox.cgroups import CgroupLimits, probe\n"
    "m = probe(); b = m.create('%d-1' % __import__('os').getpid(), CgroupLimits(64 << 20, 8))\n"
    "print(b.paths[0]); print(open('/proc/self/cgroup').read().strip()); m.close()\n"
)


def _python(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*argv, sys.executable, "-c", SHOW_BOX],
        capture_output=True,
        text=True,
        cwd=CHECKOUT,
        env=env,
        timeout=300,
        check=False,
    )


def test_boxes_live_in_the_delegated_unit_and_the_unit_in_its_leaf() -> None:
    unit_dir, unit = unit_of(own_cgroup(Path("/proc/self/cgroup").read_text()))
    assert unit == "v2lab-job.service", unit
    manager = probe()
    try:
        assert manager.relative_parent == unit_dir + "/stockade"
        box = manager.create(f"{os.getpid()}-77", CgroupLimits(64 << 20, 8))
        assert Path(box.paths[0]).parent == Path(MOUNT + unit_dir, "stockade")
        # Every process of the unit now sits in the leaf; the unit's node holds none.
        assert own_cgroup(Path("/proc/self/cgroup").read_text()) == f"{unit_dir}/{LEAF}"
        assert Path(MOUNT + unit_dir, "cgroup.procs").read_text() == ""
        assert not Path(MOUNT, "stockade").exists(), "a box node at the hierarchy's root"
    finally:
        manager.close()


def test_transient_scope_with_delegation_holds_its_boxes() -> None:
    done = _python("systemd-run", "--scope", "--quiet", "-p", "Delegate=yes", "--")
    assert done.returncode == 0, done.stderr
    path, cgroup = done.stdout.split()
    scope = unit_of(cgroup[3:])[0]
    assert scope.endswith(".scope") and path.startswith(MOUNT + scope + "/stockade/"), done.stdout


def test_scope_without_delegation_is_refused_with_the_fix() -> None:
    done = _python("systemd-run", "--scope", "--quiet", "-p", "Delegate=no", "--")
    assert done.returncode != 0, done.stdout
    assert "is not delegated" in done.stderr and "Delegate=yes" in done.stderr, done.stderr


def test_worker_reruns_itself_in_a_delegated_scope() -> None:
    # What `stockade worker` does (service/commands.py) from a scope that delegates nothing.
    rerun = (
        "import os, sys\n"
        "from sandbox.cgroups import delegated_scope_argv\n"
        f"argv = delegated_scope_argv([sys.executable, '-c', {SHOW_BOX!r}])\n"
        "assert argv is not None\n"
        "os.execvp(argv[0], argv)\n"
    )
    scope = ["systemd-run", "--scope", "--quiet", "-p", "Delegate=no", "--"]
    done = subprocess.run(
        [*scope, sys.executable, "-c", rerun],
        capture_output=True,
        text=True,
        cwd=CHECKOUT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    path, cgroup = done.stdout.split()
    scope, name = unit_of(cgroup[3:])
    assert name.startswith("stockade-delegated-") and name.endswith(".scope"), cgroup
    assert path.startswith(MOUNT + scope + "/stockade/"), done.stdout


def test_private_cgroup_namespace_uses_the_entrypoint_leaf() -> None:
    # As docker --cgroupns=private: a new cgroup and mount namespace, cgroup2 mounted afresh
    # (the namespace's root is the scope), the host's /run out of sight, the entrypoint.
    entry = CHECKOUT / "deploy/docker/worker-entrypoint.sh"
    inner = (
        "umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && "
        f'mount -t tmpfs tmp /run && exec {entry} "$@"'
    )
    env = {**os.environ, "STOCKADE_ROOTFS": "host"}
    argv = ["systemd-run", "--scope", "--quiet", "-p", "Delegate=yes", "--"]
    # No --fork: a waiting unshare parent would hold the scope, which no container has.
    argv += ["unshare", "--cgroup", "--mount", "sh", "-c", inner, "sh"]
    done = _python(*argv, env=env)
    assert done.returncode == 0, done.stderr
    path, cgroup = done.stdout.split()
    assert cgroup == "0::/init" and path.startswith(MOUNT + "/stockade/"), done.stdout


def _doctor(*argv: str) -> dict[str, str]:
    stockade = str(Path(sys.executable).parent / "stockade")
    done = subprocess.run(
        [*argv, stockade, "doctor", "--json"], capture_output=True, text=True, timeout=300
    )
    return next(f for f in json.loads(done.stdout) if f["check"] == "cgroup placement")


def test_doctor_says_where_boxes_go_or_the_fix() -> None:
    found = _doctor()
    assert found["level"] == "OK" and "inside v2lab-job.service (delegated)" in found["detail"]
    found = _doctor("systemd-run", "--scope", "--quiet", "-p", "Delegate=no", "--")
    assert found["level"] == "WARN" and "is not delegated" in found["detail"], found
    assert "re-runs itself in a transient scope" in found["detail"], found
    assert "Delegate=yes" in found["fix"], found


def test_lab_is_what_production_runs() -> None:
    assert Path("/proc/1/comm").read_text().strip() == "systemd"
    mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    assert [m.fstype for m in mounts] == ["cgroup2"], mounts
    assert shutil.which("systemd-run")


@pytest.mark.usefixtures("gvisor_usable")
def test_gvisor_box_counts_the_programs_cpu_in_the_units_cgroup(launcher: Launcher) -> None:
    """The gVisor tier's accounting on cgroup2: runsc puts the box (Sentry, gofer, the ptrace
    stubs running the program) in the box cgroup the launcher made inside this unit, so the
    reported CPU holds at least the program's own. The upper bound (test_tier_gvisor_cpu.py)
    is left to the v1 run: under TCG the Sentry's share is not a native one."""
    unit_dir, _ = unit_of(own_cgroup(Path("/proc/self/cgroup").read_text()))
    parents = launcher.cgroups.parents()
    assert parents == [MOUNT + unit_dir + "/stockade"], parents
    with tempfile.TemporaryDirectory() as d:
        Path(d, "work.c").write_text(gv.WORK_C)
        subprocess.run(["gcc", "-O2", "-pthread", "-o", f"{d}/work", f"{d}/work.c"], check=True)
        work = Path(d, "work").read_bytes()
    pattern = re.compile(rf"^gvisor-{os.getpid()}-\d+$")
    stubs: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            dirs = [os.path.join(parents[0], n) for n in os.listdir(parents[0])]
            for pid, cpu in gv._stub_cpu_s(
                [d for d in dirs if pattern.match(Path(d).name)]
            ).items():
                stubs[pid] = max(stubs.get(pid, 0.0), cpu)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        spec = BoxSpec(
            argv=("/box/work", "20000000", "1", "500"),
            files=(FileIn("work", work, 0o755),),
            limits=Limits(cpu_time_s=20, wall_time_s=40),
            tier="gvisor",
        )
        r = launcher.run(spec)
    finally:
        done.set()
        sampler.join()
    assert r.status is Status.OK, r.to_dict()
    assert stubs, "no ptrace stub of the box was seen in the unit's box cgroup"
    assert r.time >= 0.9 * sum(stubs.values()), (r.time, stubs)
