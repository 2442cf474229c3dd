"""Networking through the whole box (Launcher.run): lo only by default, NAT only with --net.

Traffic goes to loopback and to the fake internet netns of test_network's fixtures, whose
policy routing catches everything the box subnet sends."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator

import pytest

from sandbox.launcher import Launcher
from sandbox.result import Status
from sandbox.spec import BoxSpec, Limits
from tests.privileged.test_network import (  # noqa: F401  (fixtures)
    BLOCKED,
    INET_HOST_IP,
    INET_IP,
    firewall,
    internet,
)

pytestmark = pytest.mark.privileged

PROBE = r"""
import errno, json, socket, sys
def connect(host, port):
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.settimeout(2)
            return "ok:" + s.recv(100).decode()
    except TimeoutError:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
targets = json.loads(sys.argv[1])
# Netlink (if_nameindex) is closed by the seccomp profile; /proc/net/dev is this netns's view.
ifs = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
print(json.dumps({"ifs": sorted(ifs),
                  "results": {f"{h}:{p}": connect(h, p) for h, p in targets}}))
"""


@pytest.fixture
def host_listener() -> Iterator[int]:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        yield srv.getsockname()[1]


def _probe(launcher: Launcher, network: bool, targets: list[tuple[str, int]]) -> dict[str, object]:
    spec = BoxSpec(
        argv=("/usr/bin/python3", "-c", PROBE, json.dumps(targets)),
        network=network,
        limits=Limits(wall_time_s=30, cpu_time_s=5),
    )
    r = launcher.run(spec)
    assert r.status is Status.OK, (r.message, r.stderr)
    out: dict[str, object] = json.loads(r.stdout)
    return out


def _links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if ": sbx" in line]


@pytest.mark.usefixtures("internet")
def test_box_without_network_has_only_lo(launcher: Launcher, host_listener: int) -> None:
    out = _probe(launcher, False, [(INET_IP, 80), ("127.0.0.1", host_listener)])
    assert out["ifs"] == ["lo"]
    results = out["results"]
    assert isinstance(results, dict)
    assert results[f"{INET_IP}:80"] == "ENETUNREACH"
    # 127.0.0.1 is the box's own loopback: nothing listens there.
    assert results[f"127.0.0.1:{host_listener}"] == "ECONNREFUSED"


@pytest.mark.usefixtures("internet")
def test_box_with_network_reaches_only_the_internet(launcher: Launcher, host_listener: int) -> None:
    before = _links()
    targets = [(INET_IP, 80), ("127.0.0.1", host_listener), *((ip, 80) for ip in BLOCKED)]
    out = _probe(launcher, True, targets)
    assert out["ifs"] == ["eth0", "lo"]
    results = out["results"]
    assert isinstance(results, dict)
    assert results[f"{INET_IP}:80"] == f"ok:peer={INET_HOST_IP}"  # through NAT
    assert results[f"127.0.0.1:{host_listener}"] == "ECONNREFUSED"
    for ip in BLOCKED:
        assert results[f"{ip}:80"] == "ECONNREFUSED", ip
    launcher.settle()
    assert _links() == before == []  # the box's veth went with it
