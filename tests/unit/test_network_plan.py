"""The pure network plans: the nft ruleset text and the per-slot veth addresses."""

from __future__ import annotations

import ipaddress
import re

import pytest

from sandbox.netplan import IF_PREFIX, NetConfig, plan_box_addresses, plan_nft_ruleset

IFNAMSIZ = 16  # including the NUL: names are at most 15 characters (netdevice(7))


def _chain(ruleset: str, name: str) -> list[str]:
    body = re.search(rf"chain {name} {{\n(.*?)\n  }}", ruleset, re.S)
    assert body, f"no chain {name}"
    return [line.strip() for line in body.group(1).splitlines() if line.strip()]


def _blocked(ruleset: str) -> list[ipaddress.IPv4Network]:
    m = re.search(r"set blocked_v4 {.*?elements = { (.*?) }", ruleset)
    assert m
    return [ipaddress.IPv4Network(e) for e in m.group(1).split(", ")]


def _is_blocked(ruleset: str, target: str) -> bool:
    net = ipaddress.IPv4Network(target)
    return any(net.subnet_of(b) for b in _blocked(ruleset))


def test_one_idempotent_table() -> None:
    text = plan_nft_ruleset(NetConfig())
    assert text.startswith("table inet stockade\ndelete table inet stockade\ntable inet stockade {")
    assert text.count("table inet") == 3


def test_input_rejects_everything_from_boxes() -> None:
    # inet: both families, every host address, not only the veth's own.
    assert _chain(plan_nft_ruleset(NetConfig()), "input")[1].startswith(
        'iifname "sbx*" jump refuse'
    )


def test_refusals_fail_fast() -> None:
    # A TCP reset, not rate-limited ICMP and never a silent drop that leaves connect() hanging.
    assert _chain(plan_nft_ruleset(NetConfig()), "refuse") == [
        "meta l4proto tcp counter reject with tcp reset",
        "counter reject with icmpx admin-prohibited",
    ]


@pytest.mark.parametrize(
    "target",
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "169.254.169.254/32",
        "224.0.0.0/4",
        "255.255.255.255/32",
        "10.213.0.0/16",
    ],
)
def test_forward_blocks_private_local_and_metadata(target: str) -> None:
    text = plan_nft_ruleset(NetConfig())
    assert _is_blocked(text, target)
    assert "ip daddr @blocked_v4 jump refuse" in _chain(text, "from_box")


def test_public_addresses_are_not_blocked() -> None:
    text = plan_nft_ruleset(NetConfig())
    assert not _is_blocked(text, "203.0.113.1/32")
    assert not _is_blocked(text, "1.1.1.1/32")


def test_boxes_get_no_ipv6_and_no_box_to_box() -> None:
    text = plan_nft_ruleset(NetConfig())
    assert _chain(text, "from_box")[0].startswith("meta nfproto ipv6 jump refuse")
    forward = _chain(text, "forward")
    assert forward[1] == 'oifname "sbx*" ct state established,related accept'
    assert forward[2].startswith('oifname "sbx*" jump refuse')
    assert forward.index('iifname "sbx*" jump from_box') > 2  # new flows into a box go first


def test_masquerade_only_box_subnet() -> None:
    text = plan_nft_ruleset(NetConfig(subnet_base="10.77.0.0/20"))
    assert 'ip saddr 10.77.0.0/20 oifname != "sbx*" masquerade' in _chain(text, "postrouting")


def test_contain_forwarding_drops_other_traffic() -> None:
    assert _chain(plan_nft_ruleset(NetConfig()), "forward")[-1] == "counter drop"
    loose = plan_nft_ruleset(NetConfig(contain_forwarding=False))
    assert _chain(loose, "forward")[-1] == 'iifname "sbx*" jump from_box'


def test_dns_is_allowed_before_the_blocked_ranges() -> None:
    rules = _chain(plan_nft_ruleset(NetConfig(dns=("10.0.0.2", "1.1.1.1"))), "from_box")
    dns = rules.index("ip daddr { 10.0.0.2, 1.1.1.1 } meta l4proto { tcp, udp } th dport 53 accept")
    assert dns < next(i for i, r in enumerate(rules) if "@blocked_v4" in r)
    assert not any("dport 53" in r for r in _chain(plan_nft_ruleset(NetConfig()), "from_box"))


def test_subnet_outside_blocked_ranges_is_blocked_too() -> None:
    text = plan_nft_ruleset(NetConfig(subnet_base="198.51.100.0/24"))
    assert _is_blocked(text, "198.51.100.0/24")
    # Overlapping ranges are merged: nft refuses overlapping interval elements.
    assert "10.213.0.0/16" not in str(_blocked(plan_nft_ruleset(NetConfig())))


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError):
        plan_nft_ruleset(NetConfig(dns=("::1",)))
    with pytest.raises(ValueError):
        plan_nft_ruleset(NetConfig(subnet_base="10.213.0.1/16"))


def test_slots_get_disjoint_slash30s() -> None:
    cfg = NetConfig()
    nets = []
    for slot in range(256):
        a = plan_box_addresses(slot, cfg)
        net = ipaddress.IPv4Network(f"{a.host_ip}/{a.prefix}", strict=False)
        assert ipaddress.IPv4Address(a.box_ip) in net
        assert a.host_ip != a.box_ip
        assert a.box_ip not in (str(net.network_address), str(net.broadcast_address))
        assert net.subnet_of(ipaddress.IPv4Network(cfg.subnet_base))
        nets.append(net)
    assert all(not x.overlaps(y) for i, x in enumerate(nets) for y in nets[i + 1 :])
    assert plan_box_addresses(3, cfg).host_ip == "10.213.0.13"


def test_interface_names_fit_ifnamsiz() -> None:
    cfg = NetConfig(subnet_base="10.0.0.0/8")  # the largest slot count a sane config allows
    last = ipaddress.IPv4Network(cfg.subnet_base).num_addresses // 4 - 1
    names = {plan_box_addresses(s, cfg).host_ifname for s in (0, 1, 63, last)}
    assert len(names) == 4
    assert all(n.startswith(IF_PREFIX) and len(n) < IFNAMSIZ for n in names)
    assert len(plan_box_addresses(0, cfg).box_ifname) < IFNAMSIZ


def test_slot_outside_subnet_is_refused() -> None:
    with pytest.raises(ValueError, match=r"slots 0\.\.16383"):
        plan_box_addresses(16384, NetConfig())
    with pytest.raises(ValueError):
        plan_box_addresses(-1, NetConfig())
