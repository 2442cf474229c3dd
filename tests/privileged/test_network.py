"""Box networking on the real kernel: lo-only netns and granted NATed veth access.

Traffic goes only to loopback and to a "fake internet" netns this module creates: a policy
routing rule sends everything the box subnet sends into that netns, so even a broken firewall
could not let a test packet reach a real network.
"""

from __future__ import annotations

import errno
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox import syscalls as sc
from sandbox.errors import SandboxError
from sandbox.network import (
    GrantedNetwork,
    NetConfig,
    bring_up_loopback,
    ensure_firewall,
    plan_box_addresses,
    plan_nft_ruleset,
    remove_firewall,
)

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: netns, veth, nftables"),
    pytest.mark.skipif(
        not (shutil.which("ip") and shutil.which("nft")), reason="needs iproute2 (ip) and nft"
    ),
]

CFG = NetConfig()
SLOT = 16370  # high slots, so a launcher's boxes (slots 0..63) never collide with ours
INET_NS = f"stockade-test-inet-{os.getpid()}"
INET_IF = f"sti{os.getpid()}"
INET_IP, INET_HOST_IP = "203.0.113.1", "203.0.113.254"  # TEST-NET-3, only in our netns
ROUTE_TABLE, RULE_PREF = 21399, 21399
# Blocked destinations, all given to the fake internet too: were the firewall to let them
# through, the connection would succeed instead of failing.
BLOCKED = ["169.254.169.254", "10.99.99.99", "192.168.213.1", "172.16.213.1", "100.64.213.1"]
FAST_S = 1.0

ECHO_SERVER = r"""
import select, socket, sys, time
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 80))
srv.listen(16)
print("listening", flush=True)
deadline, served = time.monotonic() + float(sys.argv[1]), 0
while served < 32 and time.monotonic() < deadline:
    if select.select([srv], [], [], 0.2)[0]:
        conn, peer = srv.accept()
        served += 1
        with conn:
            conn.sendall(f"peer={peer[0]}".encode())
        print("peer", peer[0], flush=True)
"""


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=15, check=check)


def _ours() -> dict[str, list[str]]:
    links = _sh("ip", "-o", "link").stdout.splitlines()
    return {
        "links": [x for x in links if f": sbx{SLOT // 10}" in x or f": {INET_IF}" in x],
        "netns": [x for x in _sh("ip", "netns", "list").stdout.splitlines() if INET_NS in x],
        "rules": [
            x for x in _sh("ip", "rule").stdout.splitlines() if x.startswith(f"{RULE_PREF}:")
        ],
        "routes": [x for x in _sh("ip", "route").stdout.splitlines() if "blackhole" in x],
    }


def _counted(chain: str, marker: str = "") -> int:
    """Packets counted so far by the table's rules in `chain` (those whose text has marker)."""
    out = _sh("nft", "list", "chain", "inet", "stockade", chain).stdout
    lines = [x for x in out.splitlines() if marker in x]
    return sum(int(n) for x in lines for n in re.findall(r"packets (\d+)", x))


def _connect(host: str, port: int, timeout: float = 3.0) -> dict[str, Any]:
    """Child side: one bounded connection attempt, described as data."""
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            outcome, reply = "ok", s.recv(100).decode()
    except TimeoutError:
        outcome, reply = "timeout", ""
    except OSError as e:
        outcome, reply = errno.errorcode.get(e.errno or 0, str(e)), ""
    return {"outcome": outcome, "reply": reply, "seconds": time.monotonic() - start}


class FakeBox:
    """A stand-in for the box child: its own netns via ctypes, then paused on a pipe."""

    def __init__(
        self,
        body: Callable[[], dict[str, Any]],
        listen_port: int = 0,
        unshare_after_s: float = 0.0,  # > 0: return at once, as the launcher's fork does
    ) -> None:
        ready_r, ready_w = os.pipe()
        go_r, self._go = os.pipe()
        self._out, out_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - child
            try:
                time.sleep(unshare_after_s)
                sc.unshare(sc.CLONE_NEWNET)
                if listen_port:  # a target that would accept, were the firewall to let it
                    srv = socket.socket()
                    srv.bind(("0.0.0.0", listen_port))
                    srv.listen()
                os.write(ready_w, b"R")
                if select.select([go_r], [], [], 20)[0] and os.read(go_r, 1) == b"G":
                    os.write(out_w, json.dumps(body()).encode())
            except BaseException as e:
                os.write(out_w, json.dumps({"error": repr(e)}).encode())
            finally:
                os._exit(0)
        for fd in (ready_w, go_r, out_w):
            os.close(fd)
        ok = unshare_after_s > 0 or (
            select.select([ready_r], [], [], 10)[0] and os.read(ready_r, 1) == b"R"
        )
        os.close(ready_r)
        assert ok, "box child did not get its netns"

    def run(self, timeout: float = 30.0) -> dict[str, Any]:
        os.write(self._go, b"G")
        data, deadline = b"", time.monotonic() + timeout
        while select.select([self._out], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(self._out, 65536)
            if not chunk:
                break
            data += chunk
        self.kill()
        assert data, "box child reported nothing"
        result: dict[str, Any] = json.loads(data)
        assert "error" not in result, result["error"]
        return result

    def kill(self) -> None:
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)  # not reaped yet, so the pid is still ours
            os.waitpid(self.pid, 0)
            self.pid = 0
        for fd in (self._go, self._out):
            if fd >= 0:
                os.close(fd)
        self._go = self._out = -1


@pytest.fixture
def boxes() -> Iterator[list[FakeBox]]:
    made: list[FakeBox] = []
    yield made
    for box in made:
        box.kill()


@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind() -> Iterator[None]:
    before = _ours()
    had_table = _has_table()
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        forward = f.read()
    yield
    assert _ours() == before == {"links": [], "netns": [], "rules": [], "routes": []}
    assert _has_table() == had_table
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == forward


def _has_table() -> bool:
    return _sh("nft", "list", "table", "inet", "stockade", check=False).returncode == 0


@pytest.fixture(scope="module")
def firewall() -> Iterator[NetConfig]:
    had_table = _has_table()  # a launcher's on this host: leave it in place
    ensure_firewall(CFG)
    try:
        yield CFG
    finally:
        for slot in range(SLOT, SLOT + 10):  # a failed test's box, if any
            _sh("ip", "link", "del", f"sbx{slot}", check=False)
        if not had_table:
            remove_firewall()


@pytest.fixture(scope="module")
def internet(firewall: NetConfig) -> Iterator[list[str]]:
    """A netns at 203.0.113.1 with an echo server on :80; yields the peers it has seen."""
    seen: list[str] = []
    server: subprocess.Popen[str] | None = None
    try:
        _sh("ip", "netns", "add", INET_NS)
        _sh("ip", "link", "add", INET_IF, "type", "veth", "peer", "name", "eth0", "netns", INET_NS)
        _sh("ip", "addr", "add", f"{INET_HOST_IP}/24", "dev", INET_IF)
        _sh("ip", "link", "set", INET_IF, "up")
        inside = ["ip", "-n", INET_NS]
        _sh(*inside, "addr", "add", f"{INET_IP}/24", "dev", "eth0")
        for ip in BLOCKED:
            _sh(*inside, "addr", "add", f"{ip}/32", "dev", "lo")
        _sh(*inside, "link", "set", "lo", "up")
        _sh(*inside, "link", "set", "eth0", "up")
        _sh(*inside, "route", "add", "default", "via", INET_HOST_IP)
        # Everything the boxes send goes to the fake internet; 10.213/16 falls through to main.
        table = ["table", str(ROUTE_TABLE)]
        _sh("ip", "route", "add", "default", "via", INET_IP, "dev", INET_IF, *table)
        _sh("ip", "route", "add", "throw", CFG.subnet_base, *table)
        # Replies to a box address with no veth must die here, not leave by the default route.
        _sh("ip", "route", "add", "blackhole", CFG.subnet_base)
        _sh("ip", "rule", "add", "from", CFG.subnet_base, "lookup", str(ROUTE_TABLE),
            "pref", str(RULE_PREF))  # fmt: skip
        argv = ["ip", "netns", "exec", INET_NS, "python3", "-c", ECHO_SERVER, "60"]
        server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        assert select.select([server.stdout], [], [], 10)[0], "echo server did not start"
        assert server.stdout.readline().strip() == "listening"
        out = server.stdout
        reader = threading.Thread(
            target=lambda: seen.extend(x.split()[1] for x in out), daemon=True
        )
        reader.start()
        yield seen
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
        _sh("ip", "rule", "del", "pref", str(RULE_PREF), check=False)
        _sh("ip", "route", "flush", "table", str(ROUTE_TABLE), check=False)
        _sh("ip", "route", "del", "blackhole", CFG.subnet_base, check=False)
        _sh("ip", "link", "del", INET_IF, check=False)
        _sh("ip", "netns", "del", INET_NS, check=False)


def test_plan_is_valid_nft() -> None:
    for cfg in (CFG, NetConfig(dns=("10.0.0.2",), contain_forwarding=False)):
        run = subprocess.run(["nft", "-c", "-f", "-"], input=plan_nft_ruleset(cfg), text=True,
                             capture_output=True, timeout=15)  # fmt: skip
        assert run.returncode == 0, run.stderr


def test_default_box_has_only_lo_and_it_is_up(boxes: list[FakeBox]) -> None:
    with socket.socket() as host_lo:
        host_lo.bind(("127.0.0.1", 0))
        host_lo.listen()
        host_port = host_lo.getsockname()[1]

        def body() -> dict[str, Any]:
            start = time.perf_counter()
            bring_up_loopback()
            took = time.perf_counter() - start
            with socket.socket() as srv:
                srv.bind(("127.0.0.1", 0))
                srv.listen()
                with socket.create_connection(srv.getsockname(), timeout=2):
                    pass
            return {"ifs": socket.if_nameindex(), "host": _connect("127.0.0.1", host_port),
                    "seconds": took}  # fmt: skip

        boxes.append(box := FakeBox(body))
        result = box.run()
    assert result["ifs"] == [[1, "lo"]]
    assert result["host"]["outcome"] == "ECONNREFUSED"  # the box's own lo, not the host's
    assert result["seconds"] < 0.05


@pytest.fixture(scope="module")
def granted(firewall: NetConfig, internet: list[str]) -> dict[str, Any]:
    """One --net box, probing every destination; tests below read its report."""
    addrs = plan_box_addresses(SLOT, firewall)
    with socket.socket() as lo_srv, socket.socket() as any_srv:
        lo_srv.bind(("127.0.0.1", 0))
        any_srv.bind(("0.0.0.0", 0))
        for s in (lo_srv, any_srv):
            s.listen()
        lo_port, any_port = lo_srv.getsockname()[1], any_srv.getsockname()[1]

        def body() -> dict[str, Any]:
            with open("/proc/net/if_inet6") as f:
                inet6 = f.read()
            with open("/proc/sys/net/ipv6/conf/all/disable_ipv6") as f:
                v6_off = f.read().strip()
            return {
                "ifs": [name for _, name in socket.if_nameindex()],
                "inet6": inet6,
                "v6_off": v6_off,
                "host_lo": _connect("127.0.0.1", lo_port),
                "host_veth": _connect(addrs.host_ip, any_port),
                "inet": [_connect(INET_IP, 80) for _ in range(2)],
                "blocked": {ip: _connect(ip, 80) for ip in BLOCKED},
            }

        box = FakeBox(body)
        try:
            net = GrantedNetwork.attach(SLOT, box.pid, firewall)
            try:
                before = _counted("refuse")
                return {**box.run(), "refused": _counted("refuse") - before}
            finally:
                net.detach()
        finally:
            box.kill()


def test_granted_box_has_eth0_and_no_ipv6(granted: dict[str, Any]) -> None:
    assert granted["ifs"] == ["lo", "eth0"]
    assert granted["inet6"] == "" and granted["v6_off"] == "1"


def test_granted_box_cannot_reach_host_loopback(granted: dict[str, Any]) -> None:
    assert granted["host_lo"]["outcome"] == "ECONNREFUSED"  # its own lo; the host's is unseen


def test_granted_box_cannot_reach_host_via_veth(granted: dict[str, Any]) -> None:
    # The listener is on 0.0.0.0: only the input chain's refusal stops this.
    assert granted["host_veth"]["outcome"] == "ECONNREFUSED"
    assert granted["host_veth"]["seconds"] < FAST_S


def test_granted_box_reaches_internet_through_nat(
    granted: dict[str, Any], internet: list[str]
) -> None:
    for attempt in granted["inet"]:
        assert attempt["outcome"] == "ok"
        assert attempt["reply"] == f"peer={INET_HOST_IP}"  # masqueraded, not the box's 10.213.x
    deadline = time.monotonic() + 5
    while len(internet) < len(granted["inet"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert internet == [INET_HOST_IP] * len(granted["inet"])  # and nothing blocked got there


@pytest.mark.parametrize("ip", BLOCKED)
def test_granted_box_cannot_reach_blocked(granted: dict[str, Any], ip: str) -> None:
    # The fake internet listens on every one of these: only the firewall's reset refuses.
    assert granted["blocked"][ip]["outcome"] == "ECONNREFUSED"
    assert granted["blocked"][ip]["seconds"] < FAST_S


def test_refusals_come_from_the_table(granted: dict[str, Any]) -> None:
    assert granted["refused"] == 1 + len(BLOCKED)  # host veth + blocked, one reset each


def test_boxes_cannot_reach_each_other(
    firewall: NetConfig, internet: list[str], boxes: list[FakeBox]
) -> None:
    target = plan_box_addresses(SLOT + 1, firewall)
    boxes.append(quiet := FakeBox(lambda: {}, listen_port=80))
    boxes.append(prober := FakeBox(lambda: {"peer": _connect(target.box_ip, 80)}))
    nets = [GrantedNetwork.attach(SLOT + 1, quiet.pid, firewall)]
    try:
        nets.append(GrantedNetwork.attach(SLOT + 2, prober.pid, firewall))
        result = prober.run()
    finally:
        for net in nets:
            net.detach()
    assert result["peer"]["outcome"] == "ECONNREFUSED"  # the peer listens: refused by us


def test_spoofed_source_is_dropped(
    firewall: NetConfig, internet: list[str], boxes: list[FakeBox]
) -> None:
    # Only root in the box could do this (the real box has no capabilities); rp-filter anyway.
    other = plan_box_addresses(SLOT + 9, firewall).box_ip

    def body() -> dict[str, Any]:
        subprocess.run(["ip", "addr", "add", f"{other}/32", "dev", "eth0"], check=True, timeout=10)
        start = time.monotonic()
        try:
            socket.create_connection((INET_IP, 80), timeout=1.0, source_address=(other, 0))
            return {"outcome": "ok"}
        except OSError as e:
            return {"outcome": type(e).__name__, "seconds": time.monotonic() - start}

    boxes.append(box := FakeBox(body))
    net = GrantedNetwork.attach(SLOT + 6, box.pid, firewall)
    try:
        before = _counted("from_box", "spoofed source")
        result = box.run()
        dropped = _counted("from_box", "spoofed source") - before
    finally:
        net.detach()
    assert result["outcome"] == "TimeoutError"
    assert dropped >= 1


def test_detach_is_idempotent_and_removes_both_ends(
    firewall: NetConfig, boxes: list[FakeBox]
) -> None:
    boxes.append(box := FakeBox(lambda: {"ifs": [n for _, n in socket.if_nameindex()]}))
    net = GrantedNetwork.attach(SLOT + 3, box.pid, firewall)
    with pytest.raises(SandboxError, match="attached"):
        remove_firewall()  # never while a box could reach the host without it
    net.detach()
    net.detach()
    assert net.addrs.host_ifname not in [n for _, n in socket.if_nameindex()]
    assert box.run()["ifs"] == ["lo"]


def test_host_end_goes_when_the_box_exits(firewall: NetConfig, boxes: list[FakeBox]) -> None:
    boxes.append(box := FakeBox(lambda: {}))
    name = plan_box_addresses(SLOT + 4, firewall).host_ifname
    net = GrantedNetwork.attach(SLOT + 4, box.pid, firewall)
    box.run()
    deadline = time.monotonic() + 10  # netns teardown is asynchronous
    while name in dict((n, i) for i, n in socket.if_nameindex()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert name not in [n for _, n in socket.if_nameindex()]
    net.detach()  # already gone: no error


def test_attach_waits_for_the_box_to_leave_the_host_netns(
    firewall: NetConfig, boxes: list[FakeBox]
) -> None:
    # The launcher attaches right after fork, while its child may not have unshared yet.
    boxes.append(
        box := FakeBox(lambda: {"ifs": [n for _, n in socket.if_nameindex()]}, unshare_after_s=0.2)
    )
    net = GrantedNetwork.attach(SLOT + 7, box.pid, firewall)
    try:
        assert box.run()["ifs"] == ["lo", "eth0"]
    finally:
        net.detach()


def test_attach_refuses_a_pid_in_the_host_netns(firewall: NetConfig) -> None:
    proc = subprocess.Popen(["sleep", "10"])
    try:
        with pytest.raises(SandboxError, match="still the host's netns"):
            GrantedNetwork.attach(SLOT + 5, proc.pid, firewall)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert plan_box_addresses(SLOT + 5, firewall).host_ifname not in [
        n for _, n in socket.if_nameindex()
    ]


def test_ensure_firewall_is_idempotent(firewall: NetConfig) -> None:
    ensure_firewall(firewall)
    ensure_firewall(firewall)
    tables = _sh("nft", "list", "tables").stdout.splitlines()
    assert tables.count("table inet stockade") == 1
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read().strip() == "1"
