"""The box's network: a fresh netns with lo up (the default), and opt-in NATed veth.

Granted networking needs IPv4 forwarding for NAT. Like Docker's daemon, ensure_firewall turns
net.ipv4.ip_forward on the first time a box is granted the network and records the old value,
which remove_firewall restores; NetConfig.contain_forwarding keeps the host from forwarding
anything that is not a box's traffic meanwhile.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sandbox import syscalls as sc
from sandbox.errors import SandboxError
from sandbox.netdev import (
    add_default_route,
    bring_up_loopback,
    create_veth,
    delete_link,
    link_up,
    read_sysctl,
    set_ipv4,
    write_sysctl,
)
from sandbox.netplan import (
    BLOCKED_V4,
    IF_PREFIX,
    TABLE,
    BoxAddrs,
    NetConfig,
    plan_box_addresses,
    plan_nft_ruleset,
)

__all__ = [
    "BLOCKED_V4",
    "BoxAddrs",
    "GrantedNetwork",
    "NetConfig",
    "bring_up_loopback",
    "ensure_firewall",
    "plan_box_addresses",
    "plan_nft_ruleset",
    "remove_firewall",
]

_UNSHARE_WAIT_S = 2.0
_IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
_T = TypeVar("_T")


# --- granted networking: the shell that applies the plans ---


def _in_thread(fn: Callable[[], _T], netns_fd: int) -> _T:
    """Run fn on a short-lived thread, inside netns_fd. Namespace membership is per
    thread (setns(2)) and ends with the thread, so the caller's own netns is never touched."""
    out: list[_T] = []
    err: list[BaseException] = []

    def body() -> None:
        try:
            sc.setns(netns_fd, sc.CLONE_NEWNET, step="network")
            out.append(fn())
        except BaseException as e:
            err.append(e)

    t = threading.Thread(target=body, name="stockade-netns")
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0]


_fw_lock = threading.Lock()
_fw_applied: list[NetConfig] = []  # what this process applied
_fw_saved_forward: list[str] = []  # ip_forward before this process turned it on


def ensure_firewall(cfg: NetConfig) -> None:
    """Parent side, idempotent: apply the table (once per process, re-applied if someone removed
    it), then turn IPv4 forwarding on, as NAT needs, recording the old value for remove_firewall.
    Rules come first so forwarding is never on without them."""
    with _fw_lock:
        if _fw_applied == [cfg] and _nft(f"list table inet {TABLE}", check=False):
            return
        _nft(plan_nft_ruleset(cfg))
        _fw_applied[:] = [cfg]
        old = read_sysctl(_IP_FORWARD)
        if old != "1":
            if not _fw_saved_forward:
                _fw_saved_forward.append(old)
            write_sysctl(_IP_FORWARD, "1")


def remove_firewall() -> None:
    """Operator/tests: undo ensure_firewall. Refuses while any box veth exists, since without
    the table a box could reach the host."""
    with _fw_lock:
        boxes = [name for _, name in socket.if_nameindex() if name.startswith(IF_PREFIX)]
        if boxes:
            raise SandboxError("network", "remove_firewall", errno.EBUSY, f"attached: {boxes}")
        if _fw_saved_forward:
            write_sysctl(_IP_FORWARD, _fw_saved_forward.pop())
        _nft(f"table inet {TABLE}\ndelete table inet {TABLE}\n")
        _fw_applied.clear()


class GrantedNetwork:
    """Parent side, per box: a veth pair (veth(4)) from the host into the box's netns."""

    def __init__(self, addrs: BoxAddrs) -> None:
        self.addrs = addrs
        self._attached = True

    @classmethod
    def attach(cls, slot: int, box_pid: int, cfg: NetConfig) -> GrantedNetwork:
        """Call once the box child has its own netns and waits for us; box_pid is any pid in it
        (as the caller's pid namespace sees it). Raises SandboxError, leaving nothing behind."""
        addrs = plan_box_addresses(slot, cfg)
        ensure_firewall(cfg)  # never a box veth without the rules
        netns = _box_netns_fd(box_pid)
        try:
            try:
                create_veth(addrs.host_ifname, addrs.box_ifname, netns)
            except SandboxError as e:
                if e.errno != errno.EEXIST:
                    raise
                # Left by a launcher that died: a slot is locked host-wide, so this is stale.
                delete_link(addrs.host_ifname)
                create_veth(addrs.host_ifname, addrs.box_ifname, netns)
            try:
                _configure_host_side(addrs)
                _in_thread(lambda: _configure_box_side(addrs), netns)
            except BaseException:
                delete_link(addrs.host_ifname)
                raise
        finally:
            os.close(netns)
        return cls(addrs)

    def detach(self) -> None:
        """Idempotent. Deleting one end of a veth deletes its peer (veth(4))."""
        if self._attached:
            delete_link(self.addrs.host_ifname)
            self._attached = False


def _box_netns_fd(pid: int) -> int:
    # Aiming the veth peer at a pid that has not yet unshared would put eth0 in the host's netns,
    # so wait (bounded) until the pid's netns differs from ours.
    own = os.stat("/proc/thread-self/ns/net")
    deadline = time.monotonic() + _UNSHARE_WAIT_S
    while True:
        try:
            fd = sc.ns_fd(pid, "net")
        except OSError as e:
            raise sc.errno_error("network", f"open(/proc/{pid}/ns/net)", e) from e
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (own.st_dev, own.st_ino):
            return fd
        os.close(fd)
        if time.monotonic() > deadline:
            raise SandboxError("network", f"open(/proc/{pid}/ns/net)", 0, "still the host's netns")
        time.sleep(0.0005)


def _configure_host_side(addrs: BoxAddrs) -> None:
    # No IPv6 on the host end either, set while it is down so it never gets a link-local.
    write_sysctl(f"/proc/sys/net/ipv6/conf/{addrs.host_ifname}/disable_ipv6", "1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        set_ipv4(s, addrs.host_ifname, addrs.host_ip, addrs.prefix)


def _configure_box_side(addrs: BoxAddrs) -> None:
    # Runs on a thread inside the box's netns: /proc/sys/net and new sockets belong to the
    # netns of the task that opens them (network_namespaces(7)).
    for conf in ("all", "default", addrs.box_ifname):
        write_sysctl(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6", "1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        link_up(s, "lo")
        set_ipv4(s, addrs.box_ifname, addrs.box_ip, addrs.prefix)
        add_default_route(s, addrs.host_ip)


def _nft(script: str, check: bool = True) -> bool:
    try:
        run = subprocess.run(
            ["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SandboxError("network", "nft -f -", 0, str(e)) from e
    if check and run.returncode:
        raise SandboxError("network", "nft -f -", 0, run.stderr.strip())
    return run.returncode == 0
