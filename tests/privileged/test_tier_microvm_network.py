"""test_hostile_network.py's programs, with test_hostile_escape.py's descriptor and ptrace
probes, in one microVM. The VM has no network device at all: the guest kernel's loopback
is its only interface, and it is down (the agent never brings it up)."""

from __future__ import annotations

import os
import socket

import pytest

from sandbox.launcher import Launcher
from tests.privileged import test_hostile_escape as es
from tests.privileged import test_hostile_network as net
from tests.privileged.test_hostile_network import host_listeners
from tests.privileged.test_tier_gvisor_containment import _host_unchanged, host_canaries
from tests.privileged.test_tier_microvm import nothing_left
from tests.privileged.tier_groups import Probe, microvm_usable, no_new_mounts, run_group

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
__all__ = ["_host_unchanged", "host_canaries", "host_listeners", "microvm_usable", "nothing_left"]
__all__ += ["no_new_mounts"]


def test_stdio_ptrace_and_network_probes(
    launcher: Launcher, host_listeners: dict[str, socket.socket]
) -> None:
    tcp_port = host_listeners["tcp"].getsockname()[1]
    udp_port = host_listeners["udp"].getsockname()[1]
    abstract = host_listeners["abstract"].getsockname()[1:].decode()
    ifaces = sorted(os.listdir("/sys/class/net"))
    with net.host_path_listener("microvm") as path:
        g = run_group(
            launcher,
            [
                Probe("fds", es.FD_LIST),
                Probe("ptrace", es.PTRACE_INIT),
                Probe("net", net.NET_PROBE, args=(str(tcp_port), str(udp_port), abstract)),
                Probe("host_path", net.HOST_PATH_SOCKET, args=(path,)),
            ],
        )
    assert net._nothing_arrived(host_listeners) == []
    assert sorted(os.listdir("/sys/class/net")) == ifaces
    # Only stdio, here the group's files (stdin is the box's memfd in a lone box).
    out = g["fds"]
    assert out["fds"] == "0,1,2", g.describe("fds")
    assert (out["fd0"], out["fd1"], out["fd2"]) == ("/box/in/fds", "/box/out/fds", "/box/out/fds")
    # pid 1 is the guest agent, root: ptrace is refused (another uid) and its /proc files
    # are not even listed (hidepid=2), where a container box's init's are EACCES.
    want = dict.fromkeys(("attach_init", "seize_init", "interrupt_init"), "EPERM")
    want |= dict.fromkeys(("init_mem", "init_mem_write", "init_environ"), "ENOENT")
    want |= dict.fromkeys(("init_stack", "init_syscall"), "ENOENT")
    assert g["ptrace"] == want, g.describe("ptrace")
    out = g["net"]
    # The guest's loopback is down and there is no other interface: every address is
    # unreachable from inside the guest kernel, the host's listeners included. The
    # abstract unix names are the guest kernel's namespace, where nobody listens.
    for key in ("tcp_loopback", "udp_loopback", "metadata", "private", "public"):
        assert out[key] == "ENETUNREACH", g.describe("net")
    # ::1 is not even assigned while lo is down (the container tier's lo is up: refused).
    assert out["tcp_localhost6"] == "EADDRNOTAVAIL", g.describe("net")
    assert out["abstract_stream"] == out["abstract_dgram"] == "ECONNREFUSED"
    assert out["interfaces"] == "lo"
    assert out["proc_net_tcp_port"] == out["proc_net_unix_name"] == "False"
    assert g["host_path"] == {"connect": "ENOENT", "docker": "ENOENT"}, g.describe("host_path")
