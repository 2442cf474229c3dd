"""Run in the lab only, last (make test-v2): the worker installed from deploy/systemd serves a
submission end to end through the API, its boxes inside its own unit's cgroup. Last, because
stopping the unit removes its RuntimeDirectory, /run/stockade, which any other launcher on
the host shares."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from sandbox.cgroups.delegation import LEAF

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(
        os.environ.get("STOCKADE_IN_V2LAB") != "1",
        reason="needs the cgroup2 lab under systemd (make test-v2)",
    ),
]
CHECKOUT = Path(__file__).resolve().parents[2]
MOUNT = "/sys/fs/cgroup"


UNITS = ("stockade-redis", "stockade-worker", "stockade-api")
WORKER_UNIT = MOUNT + "/system.slice/stockade-worker.service"
API_DROPIN = Path("/etc/systemd/system/stockade-api.service.d")


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
    if CHECKOUT.is_relative_to("/tmp"):
        # A clone under /tmp (CI's mktemp -d) does not exist in the API unit's PrivateTmp, and
        # /opt/stockade points there: bound in read-only, where an install under /opt needs
        # nothing. The unit file itself is used as shipped.
        API_DROPIN.mkdir(parents=True, exist_ok=True)
        (API_DROPIN / "checkout.conf").write_text(f"[Service]\nBindReadOnlyPaths={CHECKOUT}\n")
    subprocess.run(["systemctl", "daemon-reload"], check=True)


def _uninstall() -> None:
    subprocess.run(["systemctl", "stop", *UNITS], check=False, timeout=120)
    for unit in UNITS:
        Path(f"/etc/systemd/system/{unit}.service").unlink(missing_ok=True)
    shutil.rmtree(API_DROPIN, ignore_errors=True)
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
