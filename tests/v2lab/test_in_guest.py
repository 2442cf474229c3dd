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

import httpx
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
    assert found["level"] == "FAIL" and "is not delegated" in found["detail"], found
    assert "Delegate=yes" in found["fix"], found


def test_lab_is_what_production_runs() -> None:
    assert Path("/proc/1/comm").read_text().strip() == "systemd"
    mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    assert [m.fstype for m in mounts] == ["cgroup2"], mounts
    assert shutil.which("systemd-run")


UNITS = ("stockade-redis", "stockade-worker", "stockade-api")
WORKER_UNIT = MOUNT + "/system.slice/stockade-worker.service"


def _install_from_deploy(password: str) -> None:
    """docs/operating.md "systemd (bare metal)", with this checkout as /opt/stockade."""
    # Debian's own redis-server.service holds port 6379 once the package is installed.
    subprocess.run(["systemctl", "disable", "--now", "redis-server"], check=True, timeout=120)
    os.symlink(CHECKOUT, "/opt/stockade")
    etc = Path("/etc/stockade")
    etc.mkdir(mode=0o750)
    shutil.chown(etc, group="redis")
    env = (CHECKOUT / "deploy/systemd/stockade.env").read_text()
    # The language self-tests at start-up take minutes under TCG; they are not the subject.
    (etc / "stockade.env").write_text(
        env.replace("@REDIS_PASSWORD@", password) + "STOCKADE_SELF_TEST=0\n"
    )
    conf = (CHECKOUT / "deploy/systemd/redis.conf").read_text()
    (etc / "redis.conf").write_text(conf.replace("@REDIS_PASSWORD@", password))
    os.chmod(etc / "stockade.env", 0o600)
    os.chmod(etc / "redis.conf", 0o640)
    shutil.chown(etc / "redis.conf", group="redis")
    for unit in UNITS:
        shutil.copy(CHECKOUT / f"deploy/systemd/{unit}.service", "/etc/systemd/system/")
    subprocess.run(["systemctl", "daemon-reload"], check=True)


def _uninstall() -> None:
    subprocess.run(["systemctl", "stop", *UNITS], check=False, timeout=120)
    for unit in UNITS:
        Path(f"/etc/systemd/system/{unit}.service").unlink(missing_ok=True)
    subprocess.run(["systemctl", "daemon-reload"], check=False)
    shutil.rmtree("/etc/stockade", ignore_errors=True)
    Path("/opt/stockade").unlink(missing_ok=True)


def test_worker_installed_from_deploy_serves_a_submission_with_boxes_in_its_unit() -> None:
    _install_from_deploy(os.urandom(16).hex())
    try:
        started = subprocess.run(["systemctl", "start", *UNITS], check=False, timeout=300)
        assert started.returncode == 0, _journal()
        deadline = time.monotonic() + 600
        body: dict[str, object] = {}
        while int(str(body.get("workers", 0))) < 1:
            assert time.monotonic() < deadline, (body, _journal())
            time.sleep(2)
            try:
                body = httpx.get("http://127.0.0.1:2358/api/v1/health", timeout=30).json()
            except httpx.HTTPError:
                continue
        job = {"source_code": "print(6 * 7)", "language_id": 71}
        done = httpx.post("http://127.0.0.1:2358/submissions?wait=true", json=job, timeout=300)
        assert done.json()["stdout"] == "42\n", (done.text, _journal())
        # The box was made inside the worker's own delegated subtree, nothing at the root.
        assert Path(WORKER_UNIT, "stockade").is_dir(), _journal()
        assert Path(WORKER_UNIT, "cgroup.procs").read_text() == ""
        assert Path(WORKER_UNIT, LEAF, "cgroup.procs").read_text().split()
        assert not Path(MOUNT, "stockade").exists()
    finally:
        _uninstall()


def _journal() -> str:
    done = subprocess.run(
        ["journalctl", "--no-pager", "-n", "60", *(f"-u{u}" for u in UNITS)],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


def test_gvisor_box_counts_the_programs_cpu_in_the_units_cgroup(launcher: Launcher) -> None:
    """The gVisor tier's accounting on cgroup2: runsc puts the box (Sentry, gofer, the ptrace
    stubs running the program) in the box cgroup the launcher made inside this unit, so the
    reported CPU holds at least the program's own. The upper bound (test_tier_gvisor_cpu.py)
    is left to the v1 run: under TCG the Sentry's share is not a native one."""
    gvisor_usable(launcher)
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
