"""Hostile programs that reach for the host's network: listeners on its loopback, abstract
unix sockets in its network namespace, unix sockets on its paths, and the outside world."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import Iterator

import pytest

from sandbox.launcher import Launcher
from sandbox.result import Status
from tests.privileged import hostile_util as hu

pytestmark = pytest.mark.privileged

guard = hu.guard


NET_PROBE = """
import socket
tcp_port, udp_port, abstract = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def connect(family, kind, addr):
    s = socket.socket(family, kind)
    s.settimeout(1.0)
    try:
        s.connect(addr)
        if kind == socket.SOCK_DGRAM:
            s.send(b"hello from the box")
            s.recv(16)  # an ICMP port-unreachable here shows up as ECONNREFUSED
    finally:
        s.close()
attempt("tcp_loopback", connect, socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", tcp_port))
attempt("tcp_localhost6", connect, socket.AF_INET6, socket.SOCK_STREAM, ("::1", tcp_port))
attempt("udp_loopback", connect, socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", udp_port))
attempt("abstract_stream", connect, socket.AF_UNIX, socket.SOCK_STREAM, "\\0" + abstract)
attempt("abstract_dgram", connect, socket.AF_UNIX, socket.SOCK_DGRAM, "\\0" + abstract + "-dgram")
attempt("metadata", connect, socket.AF_INET, socket.SOCK_STREAM, ("169.254.169.254", 80))
attempt("private", connect, socket.AF_INET, socket.SOCK_STREAM, ("10.0.2.2", tcp_port))
attempt("public", connect, socket.AF_INET, socket.SOCK_DGRAM, ("1.1.1.1", 53))
# if_nameindex() needs a netlink socket, which the profile refuses; /proc/net/dev is the
# same list, seen from the box's network namespace.
ifaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]]
say("interfaces", ",".join(ifaces))
# The box's own view of sockets: the host's listeners must not be listed.
say("proc_net_tcp_port", any(f":{tcp_port:04X} " in l for l in open("/proc/net/tcp")))
say("proc_net_unix_name", abstract in open("/proc/net/unix").read())
"""


@pytest.fixture
def host_listeners() -> Iterator[dict[str, socket.socket]]:
    """What a box must never reach: TCP and UDP on the host's 127.0.0.1, and abstract unix
    sockets (stream and datagram) in the host's network namespace."""
    name = f"stockade-hostile-{secrets.token_hex(6)}"
    socks = {
        "tcp": socket.socket(socket.AF_INET, socket.SOCK_STREAM),
        "udp": socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
        "abstract": socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
        "abstract_dgram": socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM),
    }
    socks["tcp"].bind(("127.0.0.1", 0))
    socks["tcp"].listen(8)
    socks["udp"].bind(("127.0.0.1", 0))
    socks["abstract"].bind("\0" + name)
    socks["abstract"].listen(8)
    socks["abstract_dgram"].bind("\0" + name + "-dgram")
    for s in socks.values():
        s.setblocking(False)
    yield socks
    for s in socks.values():
        s.close()


def _nothing_arrived(socks: dict[str, socket.socket]) -> list[str]:
    arrived = []
    for kind, s in socks.items():
        try:
            if kind in ("tcp", "abstract"):
                s.accept()[0].close()
            else:
                s.recv(64)
            arrived.append(kind)
        except BlockingIOError:
            pass
    return arrived


def test_host_loopback_and_abstract_sockets_unreachable(
    launcher: Launcher, guard: hu.HostGuard, host_listeners: dict[str, socket.socket]
) -> None:
    tcp_port = host_listeners["tcp"].getsockname()[1]
    udp_port = host_listeners["udp"].getsockname()[1]
    abstract = host_listeners["abstract"].getsockname()[1:].decode()
    r = hu.run_py(launcher, NET_PROBE, str(tcp_port), str(udp_port), abstract)
    guard.check()
    assert _nothing_arrived(host_listeners) == []
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["tcp_loopback"] == "ECONNREFUSED", hu.describe(r)
    assert out["tcp_localhost6"] in ("ECONNREFUSED", "EADDRNOTAVAIL", "ENETUNREACH")
    assert out["udp_loopback"] == "ECONNREFUSED"
    assert out["abstract_stream"] == out["abstract_dgram"] == "ECONNREFUSED"
    for key in ("metadata", "private", "public"):
        assert out[key] == "ENETUNREACH", f"{key}={out[key]}"
    assert out["interfaces"] == "lo"
    assert out["proc_net_tcp_port"] == out["proc_net_unix_name"] == "False"


HOST_PATH_SOCKET = """
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
attempt("connect", s.connect, sys.argv[1])
attempt("docker", socket.socket(socket.AF_UNIX).connect, "/run/docker.sock")
"""


@contextlib.contextmanager
def host_path_listener(tier: str) -> Iterator[str]:
    """A listening unix socket on a host path (as Redis or Docker expose one), for a box to
    try to reach; nothing may have connected to it when the block ends, and it is removed."""
    path = f"/tmp/stockade-{tier}-{secrets.token_hex(6)}.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.setblocking(False)
    try:
        yield path
        with pytest.raises(BlockingIOError):
            srv.accept()
    finally:
        srv.close()
        os.unlink(path)


def test_host_path_unix_socket_unreachable(launcher: Launcher, guard: hu.HostGuard) -> None:
    """A unix socket on a host path (as Redis or Docker expose one) is not in the box."""
    with host_path_listener("hostile") as path:
        r = hu.run_py(launcher, HOST_PATH_SOCKET, path)
        guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["connect"] == out["docker"] == "ENOENT"
