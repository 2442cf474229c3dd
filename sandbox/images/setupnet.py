"""A setup box's firewall: its veth may reach the resolved mirrors' (address, port) pairs and
nothing else, on top of the rules every granted box has (sandbox/netplan.py)."""

from __future__ import annotations

import ipaddress
import subprocess

from sandbox.errors import SandboxError

TABLE_PREFIX = "stockade_setup"


def table_name(ifname: str) -> str:
    return f"{TABLE_PREFIX}_{ifname}"


def plan_mirror_rules(ifname: str, allowed: tuple[tuple[str, int], ...]) -> str:
    """Pure: the `nft -f` script of one setup box's table. Its chains run before the stockade
    table's (a lower priority number); a reject here is final for the packet whatever other
    tables say, and an accept only lets it on to the stockade table, which still refuses the
    host and the private ranges (nft(8): verdicts of base chains)."""
    table = table_name(ifname)
    pairs = ", ".join(
        f"{ipaddress.IPv4Address(a)} . {int(p)}" for a, p in sorted(set(allowed))
    )  # IPv4Address raises on anything that is not an address, so nothing odd reaches nft
    allow = f'iifname "{ifname}" ip daddr . tcp dport {{ {pairs} }} accept' if pairs else ""
    text = f"""table inet {table}
delete table inet {table}
table inet {table} {{
  chain forward {{
    type filter hook forward priority filter - 10; policy accept;
    {allow}
    iifname "{ifname}" meta l4proto tcp counter reject with tcp reset
    iifname "{ifname}" counter reject with icmpx admin-prohibited
  }}
  chain input {{
    type filter hook input priority filter - 10; policy accept;
    iifname "{ifname}" meta l4proto tcp counter reject with tcp reset
    iifname "{ifname}" counter reject with icmpx admin-prohibited
  }}
}}"""
    return "\n".join(line for line in text.splitlines() if line.strip()) + "\n"


def apply_mirror_rules(ifname: str, allowed: tuple[tuple[str, int], ...]) -> None:
    _nft(plan_mirror_rules(ifname, allowed))


def remove_mirror_rules(ifname: str) -> None:
    table = table_name(ifname)
    _nft(f"table inet {table}\ndelete table inet {table}\n")


def _nft(script: str) -> None:
    try:
        run = subprocess.run(
            ["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SandboxError("setup box", "nft -f -", 0, str(e)) from e
    if run.returncode:
        raise SandboxError("setup box", "nft -f -", 0, run.stderr.strip())
