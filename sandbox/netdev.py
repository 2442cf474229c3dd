"""ioctl and rtnetlink wrappers for network devices: up, IPv4 address, default route, veth."""

from __future__ import annotations

import errno
import fcntl
import socket
import struct

from sandbox import syscalls as sc
from sandbox.errors import SandboxError

# netdevice(7), <linux/sockios.h>, <net/route.h>
_SIOCADDRT, _SIOCGIFFLAGS, _SIOCSIFFLAGS = 0x890B, 0x8913, 0x8914
_SIOCSIFADDR, _SIOCSIFNETMASK = 0x8916, 0x891C
_IFF_UP, _RTF_UP, _RTF_GATEWAY = 0x1, 0x1, 0x2
_IFREQ_FLAGS = struct.Struct("16sH22x")  # struct ifreq (40 bytes): name, ifr_flags
_IFREQ_ADDR = struct.Struct("16s16s8x")  # name, struct sockaddr_in
_RTENTRY = struct.Struct("@L16s16s16sHhLPhPLLH6x")  # struct rtentry, x86_64 layout
# rtnetlink(7), <linux/if_link.h>, <linux/veth.h>
_RTM_NEWLINK, _RTM_DELLINK, _NLMSG_ERROR = 16, 17, 2
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_EXCL, _NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
_IFLA_IFNAME, _IFLA_LINKINFO, _IFLA_NET_NS_FD = 3, 18, 28
_IFLA_INFO_KIND, _IFLA_INFO_DATA, _VETH_INFO_PEER = 1, 2, 1
_IFINFOMSG = bytes(16)  # struct ifinfomsg: AF_UNSPEC, no index, no flag change


def bring_up_loopback() -> None:
    """Child side: set lo UP in the caller's fresh netns, which starts with lo down
    (network_namespaces(7)). One ioctl pair, no subprocess: this is the hot path."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        link_up(s, "lo")


def link_up(s: socket.socket, ifname: str) -> None:
    """Set IFF_UP on ifname in the netns of socket s (an ioctl acts on its socket's netns)."""
    name = ifname.encode()
    raw = _ioctl(s, _SIOCGIFFLAGS, _IFREQ_FLAGS.pack(name, 0), f"ioctl(SIOCGIFFLAGS, {ifname})")
    flags = _IFREQ_FLAGS.unpack(raw)[1]
    if not flags & _IFF_UP:
        req = _IFREQ_FLAGS.pack(name, flags | _IFF_UP)
        _ioctl(s, _SIOCSIFFLAGS, req, f"ioctl(SIOCSIFFLAGS, {ifname}, IFF_UP)")


def set_ipv4(s: socket.socket, ifname: str, ip: str, prefix: int) -> None:
    """Address, then mask, then up: IPv4 installs the prefix route only for an up device, so
    the classful mask SIOCSIFADDR implies (10.x -> /8) never becomes a route."""
    name = ifname.encode()
    mask = socket.inet_ntoa(struct.pack("!I", (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF))
    _ioctl(s, _SIOCSIFADDR, _IFREQ_ADDR.pack(name, _sockaddr_in(ip)), f"SIOCSIFADDR({ifname})")
    _ioctl(s, _SIOCSIFNETMASK, _IFREQ_ADDR.pack(name, _sockaddr_in(mask)), "SIOCSIFNETMASK")
    link_up(s, ifname)


def add_default_route(s: socket.socket, gateway: str) -> None:
    """The route(8) ioctl: 0.0.0.0/0 via gateway, in the netns of socket s."""
    any_ = _sockaddr_in("0.0.0.0")
    rt = _RTENTRY.pack(
        0, any_, _sockaddr_in(gateway), any_, _RTF_UP | _RTF_GATEWAY, 0, 0, 0, 0, 0, 0, 0, 0
    )
    _ioctl(s, _SIOCADDRT, rt, f"ioctl(SIOCADDRT, default via {gateway})")


def create_veth(ifname: str, peer: str, peer_netns_fd: int) -> None:
    """One RTM_NEWLINK makes the pair with the peer already in peer_netns_fd, as `ip link add
    IFNAME type veth peer name PEER netns ...` does (veth(4)); both ends start down."""
    peer_msg = _IFINFOMSG + _nla(_IFLA_IFNAME, peer.encode() + b"\0")
    peer_msg += _nla(_IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
    data = _nla(_IFLA_INFO_DATA, _nla(_VETH_INFO_PEER, peer_msg))
    body = _IFINFOMSG + _nla(_IFLA_IFNAME, ifname.encode() + b"\0")
    body += _nla(_IFLA_LINKINFO, _nla(_IFLA_INFO_KIND, b"veth") + data)
    flags = _NLM_F_CREATE | _NLM_F_EXCL
    _rtnetlink(_RTM_NEWLINK, flags, body, f"RTM_NEWLINK(veth {ifname} peer {peer})")


def delete_link(ifname: str) -> None:
    """Delete ifname if it exists. A freed netns destroys its virtual devices, and a veth
    goes with its peer, so a box's link may be gone before we get here."""
    body = _IFINFOMSG + _nla(_IFLA_IFNAME, ifname.encode() + b"\0")
    try:
        _rtnetlink(_RTM_DELLINK, 0, body, f"RTM_DELLINK({ifname})")
    except SandboxError as e:
        if e.errno != errno.ENODEV:
            raise


def read_sysctl(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def write_sysctl(path: str, value: str) -> None:
    """/proc/sys/net belongs to the netns of the task that opens it (network_namespaces(7))."""
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        if isinstance(e, FileNotFoundError) and "/ipv6/" in path:
            return  # a kernel without IPv6 has nothing to disable
        raise sc.errno_error("network", f"write({path})", e) from e


def _sockaddr_in(ip: str) -> bytes:
    return struct.pack("=HH4s8x", socket.AF_INET, 0, socket.inet_aton(ip))


def _ioctl(s: socket.socket, request: int, arg: bytes, call: str) -> bytes:
    try:
        return fcntl.ioctl(s, request, arg)
    except OSError as e:
        raise sc.errno_error("network", call, e) from e


def _nla(kind: int, data: bytes) -> bytes:
    size = 4 + len(data)
    return struct.pack("=HH", size, kind) + data + bytes(-size % 4)


def _rtnetlink(msg_type: int, flags: int, body: bytes, call: str) -> None:
    """One rtnetlink(7) request, waiting for the kernel's ack (an NLMSG_ERROR, 0 on success)."""
    flags |= _NLM_F_REQUEST | _NLM_F_ACK
    head = struct.pack("=IHHII", 16 + len(body), msg_type, flags, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as s:
        s.settimeout(5.0)
        s.sendto(head + body, (0, 0))
        reply = s.recv(65536)
    kind = struct.unpack_from("=H", reply, 4)[0]
    code = struct.unpack_from("=i", reply, 16)[0] if kind == _NLMSG_ERROR else -errno.EPROTO
    if code:
        raise SandboxError("network", call, -code)
