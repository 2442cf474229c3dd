"""Pure plans for granted networking: per-slot veth addresses and the nftables ruleset."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IF_PREFIX = "sbx"  # host-side veth names; the table matches "sbx*" (IFNAMSIZ: <= 15 chars)
BOX_IFNAME = "eth0"
TABLE = "stockade"
# IPv4 ranges no box may reach: "this network", RFC 1918, CGNAT, loopback, link-local (the
# cloud metadata service 169.254.169.254), IETF/benchmark blocks, multicast, reserved+broadcast.
BLOCKED_V4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
)


@dataclass(frozen=True)
class NetConfig:
    """Host-wide settings for granted networking, one value per launcher."""

    subnet_base: str = "10.213.0.0/16"  # one /30 per slot; must be otherwise unused on the host
    dns: tuple[str, ...] = ()  # IPv4 resolvers boxes may reach on port 53, even in blocked ranges
    blocked: tuple[str, ...] = BLOCKED_V4  # IPv4 destinations no box may reach
    # Drop forwarded traffic that neither comes from nor goes to a box, so turning ip_forward on
    # does not make the host a router (Docker drops it too). Set False on hosts that route.
    contain_forwarding: bool = True


@dataclass(frozen=True)
class BoxAddrs:
    host_ifname: str
    box_ifname: str
    host_ip: str  # the box's gateway
    box_ip: str
    prefix: int


def plan_box_addresses(slot: int, cfg: NetConfig) -> BoxAddrs:
    """Slot n gets the n-th /30 of subnet_base: .1 on the host side, .2 in the box."""
    net = ipaddress.IPv4Network(cfg.subnet_base)
    count = net.num_addresses // 4
    if not 0 <= slot < count:
        raise ValueError(f"slot {slot}: subnet_base {net} has room for slots 0..{count - 1}")
    base = int(net.network_address) + 4 * slot
    host, box = ipaddress.IPv4Address(base + 1), ipaddress.IPv4Address(base + 2)
    return BoxAddrs(f"{IF_PREFIX}{slot}", BOX_IFNAME, str(host), str(box), 30)


def plan_nft_ruleset(cfg: NetConfig) -> str:
    """The `nft -f` script for table inet stockade (nft(8)). Adding then deleting the table
    before defining it makes the script idempotent, and nft applies a file atomically."""
    subnet = ipaddress.IPv4Network(cfg.subnet_base)
    nets = [ipaddress.IPv4Network(b) for b in cfg.blocked] + [subnet]
    # nft refuses overlapping interval elements, so merge them (the subnet sits inside 10/8).
    blocked = ", ".join(str(n) for n in ipaddress.collapse_addresses(nets))
    dns = ", ".join(str(ipaddress.IPv4Address(d)) for d in cfg.dns)
    box, to_box = f'iifname "{IF_PREFIX}*"', f'oifname "{IF_PREFIX}*"'
    allow_dns = f"ip daddr {{ {dns} }} meta l4proto {{ tcp, udp }} th dport 53 accept"
    # Refuse rather than drop, so programs fail at once instead of hanging: a TCP reset is not
    # rate-limited, while ICMP errors are, per destination (icmp_ratelimit, ip-sysctl docs).
    # A drop or reject in any base chain is final, whereas an accept ends only its own chain:
    # no other table on the host can undo these refusals.
    text = f"""table inet {TABLE}
delete table inet {TABLE}
table inet {TABLE} {{
  set blocked_v4 {{ type ipv4_addr; flags interval; elements = {{ {blocked} }}; }}
  chain refuse {{
    meta l4proto tcp counter reject with tcp reset
    counter reject with icmpx admin-prohibited
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    {box} jump refuse comment "a box never reaches the host, on any address"
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    {to_box} ct state established,related accept
    {to_box} jump refuse comment "no new flow into a box, from outside or from a box"
    {box} jump from_box
    {"counter drop" if cfg.contain_forwarding else ""}
  }}
  chain from_box {{
    meta nfproto ipv6 jump refuse comment "boxes get IPv4 only"
    fib saddr . iif oif missing counter drop comment "spoofed source"
    {allow_dns if dns else ""}
    ip daddr @blocked_v4 jump refuse
    fib daddr type {{ local, broadcast, multicast, anycast }} jump refuse
    accept
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {subnet} oifname != "{IF_PREFIX}*" masquerade
  }}
}}"""
    return "\n".join(line for line in text.splitlines() if line.strip()) + "\n"
