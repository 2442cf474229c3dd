"""QEMU in its jail, on a real VM: its own net, mount, ipc, pid, uts and cgroup namespaces, a
root holding only its runtime, the kernel and the initramfs, and no way to the host's
loopback, where Redis and the API listen. Its uid and host cgroup are what they were."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import cgroups
from sandbox.backends.microvm.backend import MicrovmBackend
from sandbox.backends.microvm.jail import INITRAMFS, KERNEL, RUNTIME, JailPlan, jail_plan
from sandbox.backends.microvm.pool import PoolKey
from sandbox.config import HostConfig
from sandbox.images.store import LayerStore
from sandbox.result import Status
from sandbox.spec import BoxSpec
from sandbox.stdio import Stdio
from tests.privileged import hostile_util as hu
from tests.privileged.test_tier_microvm import HELD, LIM, leftovers, nothing_left, usable

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
__all__ = ["nothing_left"]
NAMESPACES = ("net", "mnt", "ipc", "pid", "uts", "cgroup")


@pytest.fixture(scope="module")
def ready() -> Iterator[tuple[MicrovmBackend, int]]:
    """A backend with one ready VM (booted, warmed up, waiting for a job): its QEMU's pid."""
    config = HostConfig.from_env()
    usable(config)
    backend = MicrovmBackend(config, LayerStore(config.state_dir), cgroups.probe(), pool=1)
    HELD.append(backend)
    try:
        key = PoolKey("debian", 512)
        assert backend.pool.take(key) is None  # the pool learns the key and boots for it
        assert backend.pool.wait_ready(key, 120)
        ((pid, _),) = backend.live().items()
        yield backend, pid
    finally:
        HELD.remove(backend)
        backend.close()
    assert not leftovers(HELD), leftovers(HELD)


def plan(backend: MicrovmBackend) -> JailPlan:
    return jail_plan(
        backend.jail_dir,
        backend.qemu,
        backend.artifacts.vmlinux,
        backend.artifacts.initramfs,
        backend.accel == "kvm",
        backend.runtime_links,
        backend.runtime_dirs,
    )


def test_qemu_has_namespaces_of_its_own(ready: tuple[MicrovmBackend, int]) -> None:
    _, pid = ready
    for ns in NAMESPACES:
        theirs = os.readlink(f"/proc/{pid}/ns/{ns}")
        assert theirs != os.readlink(f"/proc/self/ns/{ns}"), ns
    status = Path(f"/proc/{pid}/status").read_text()
    nspid = next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:"))
    assert nspid == [str(pid), "1"]  # pid 1 of a namespace of its own, alone there


def test_qemu_keeps_its_uid_cgroup_and_parent(ready: tuple[MicrovmBackend, int]) -> None:
    backend, pid = ready
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert len(set(uids)) == 1 and int(uids[0]) >= backend.config.first_uid + backend.config.slots
    assert "CapEff:\t0000000000000000" in status and "CapPrm:\t0000000000000000" in status
    ppid = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
    assert int(ppid) == os.getpid()  # the launcher's child: reaped and PDEATHSIG-bound by it
    cgroup_name = backend.live()[pid]
    # The cgroup namespace's root is QEMU's own cgroup, so /proc/<pid>/cgroup says "/" from
    # inside; seen from here, every hierarchy names it.
    mine = Path(f"/proc/{pid}/cgroup").read_text()
    assert cgroup_name in mine, mine


def test_qemu_root_holds_only_its_runtime_kernel_and_initramfs(
    ready: tuple[MicrovmBackend, int],
) -> None:
    backend, pid = ready
    root = Path(f"/proc/{pid}/root")
    tops = {p.split("/")[1] for p in RUNTIME if os.path.lexists(p)}
    qemu_top = backend.qemu.split("/")[1]
    expected = tops | {qemu_top, "vm"} | ({"dev"} if backend.accel == "kvm" else set())
    assert set(os.listdir(root)) == expected
    assert set(os.listdir(root / "vm")) == {"vmlinux", "initramfs"}
    art = backend.artifacts
    for inside, host in ((KERNEL, art.vmlinux), (INITRAMFS, art.initramfs)):
        assert os.stat(f"{root}{inside}").st_ino == os.stat(host).st_ino, inside
    usr = set(os.listdir(root / "usr"))
    assert usr <= {"lib", "lib64", "share", "bin"}, usr
    assert set(os.listdir(root / "usr" / "share")) == {"qemu"}
    assert os.listdir(root / backend.qemu.lstrip("/").rsplit("/", 1)[0]) == [
        os.path.basename(backend.qemu)
    ]
    for gone in ("etc", "home", "root", "run", "tmp", "var", "proc", "sys", "srv", "opt", "mnt"):
        assert not os.path.lexists(root / gone), gone
    assert not os.path.lexists(f"{root}{backend.config.run_dir}")
    assert not os.path.lexists(f"{root}{backend.config.state_dir}")
    # Every mount QEMU sees is read-only, and none but the root and its binds.
    mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    points = [line.split()[4] for line in mounts]
    binds = {b.target for b in plan(backend).binds}
    assert points[0] == "/" and sorted(points[1:]) == sorted(binds), points
    assert {KERNEL, INITRAMFS, backend.qemu} <= binds
    for line in mounts:
        options = line.split()[5].split(",")
        assert "ro" in options and "nosuid" in options, line


def test_host_loopback_is_not_reachable_from_qemu_namespace(
    ready: tuple[MicrovmBackend, int],
) -> None:
    """A listener on the host's 127.0.0.1 (where Redis and the API listen): reachable from
    here, unreachable from QEMU's network namespace, which has no interface up at all."""
    _, pid = ready
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        connect = (
            "import socket, sys\n"
            "s = socket.socket(); s.settimeout(2)\n"
            f"try:\n    s.connect(('127.0.0.1', {port})); print('connected')\n"
            "except OSError as e:\n    print('refused', e.errno)\n"
        )

        def attempt(*nsenter: str) -> str:
            argv = [*nsenter, sys.executable, "-c", connect]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
            return done.stdout.strip()

        assert attempt() == "connected"  # the listener is real
        assert attempt("nsenter", f"--net=/proc/{pid}/ns/net").startswith("refused")
    links = subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-o", "link"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.splitlines()
    assert len(links) == 1 and ": lo:" in links[0] and "state DOWN" in links[0], links


def test_a_second_backend_alive_at_once_names_its_cgroups_apart(
    ready: tuple[MicrovmBackend, int],
) -> None:
    """Two backends of one process at once (a judge's and a self-test's): each counted its
    VMs' cgroups (vm<pid>-<n>) from 1, so the second one's first box met the first one's
    ready VM's cgroup: EEXIST, an XX."""
    backend, _ = ready
    other = MicrovmBackend(
        backend.config, LayerStore(backend.config.state_dir), cgroups.probe(), pool=0
    )
    HELD.append(other)
    try:
        spec = BoxSpec(argv=("/bin/true",), rootfs="debian", tier="microvm", limits=LIM)
        r = other.run(spec, Stdio())
    finally:
        HELD.remove(other)
        other.close()
    assert r.status is Status.OK, hu.describe(r)


LAUNCHER = """
import os
from sandbox import cgroups
from sandbox.backends.microvm.backend import MicrovmBackend
from sandbox.backends.microvm.pool import PoolKey
from sandbox.config import HostConfig
from sandbox.images.store import LayerStore
config = HostConfig.from_env()
backend = MicrovmBackend(config, LayerStore(config.state_dir), cgroups.probe(), pool=1)
key = PoolKey("debian", 512)
backend.pool.take(key)
assert backend.pool.wait_ready(key, 120)
print(os.getpid(), *backend.live(), flush=True)
os._exit(0)  # no clean-up at all: the kernel's death signal must end QEMU
"""


def test_qemu_dies_with_its_launcher(ready: tuple[MicrovmBackend, int]) -> None:
    """QEMU is cloned by an intermediate child, with CLONE_PARENT: the launcher is still its
    parent, so PR_SET_PDEATHSIG still ends it when the launcher dies without a word."""
    argv = [sys.executable, "-c", LAUNCHER]
    said = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=True).stdout
    launcher, qemu = map(int, said.split())
    left = [str(d) for d in Path("/sys/fs/cgroup").glob(f"*/stockade/vm{launcher}-*")]
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{qemu}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{qemu}").exists(), f"QEMU {qemu} outlived its launcher"
    finally:
        # The dead launcher's QEMU cgroup, which its next launcher would have swept.
        for d in left:
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.05)
