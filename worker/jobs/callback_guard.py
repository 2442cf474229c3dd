"""The callback address guard (pure): which URLs and addresses a callback may go to, shared by
the API (address literals, at submission) and the worker (every address a name resolves to).

Refused unless STOCKADE_CALLBACK_ALLOW_PRIVATE=true: loopback, private (RFC 1918, ULA),
link-local, CGNAT (100.64/10), reserved and other non-global ranges, and localhost names.
Always refused, even relaxed: unspecified (0.0.0.0, ::), multicast and the cloud metadata
address. An IPv6 address that carries an IPv4 one (IPv4-mapped, IPv4-translated, NAT64,
6to4, Teredo, IPv4-compatible) is judged by the IPv4 address it carries too: on a host with
a NAT64 or SIIT translator, 64:ff9b::a9fe:a9fe is the metadata address (Judge0's
CVE-2024-29021 was an SSRF through its callbacks).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

FIELD = "callback_url"
METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))
CGNAT = ipaddress.ip_network("100.64.0.0/10")
# RFC 4291 2.5.5.2: ::ffff:a.b.c.d, which a dual-stack socket sends to a.b.c.d itself.
IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
# RFC 2765 (SIIT): ::ffff:0:a.b.c.d, translated to a.b.c.d by a stateless translator.
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
# RFC 6052: the well-known NAT64 prefix; a DNS64 resolver hands out 64:ff9b::a.b.c.d for
# public IPv4 hosts, so such an address is fine when what it carries is public.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# RFC 8215: local-use NAT64, a network of the operator's own: internal by definition.
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
# RFC 3056: 2002:a.b.c.d::/48 reaches a.b.c.d's 6to4 relay.
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
# RFC 4291 2.5.5.1 (deprecated): ::a.b.c.d; :: and ::1 are judged as themselves.
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class CallbackRefused(ValueError):
    """The URL may not be called: bad scheme, unresolvable, or an internal address. `rule`
    is the sentence without the field's name (the API's 422 names the field apart)."""

    def __init__(self, rule: str) -> None:
        super().__init__(f"{FIELD}: {rule}")
        self.rule = rule


@dataclass(frozen=True)
class Target:
    """What a callback URL asks for: http or https, a host, a port, the path and query."""

    scheme: str
    host: str
    port: int
    path: str


def parse_url(url: str) -> Target:
    """An http(s) URL with a host and no credentials, or CallbackRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise CallbackRefused("must be an http or https URL with a valid port") from None
    if parts.scheme not in ("http", "https"):
        raise CallbackRefused("must be an http or https URL")
    if not parts.hostname or parts.username or parts.password:
        raise CallbackRefused("needs a host and no credentials")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname, port or default, path)


def literal(host: str) -> Address | None:
    """The address a host names by itself, without DNS: an IP literal, or one of the
    shorthand IPv4 spellings the resolver also accepts (127.1, 0x7f000001, 2130706433)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))  # pure: parses, never resolves
    except (OSError, ValueError):
        return None


def host_refusal(host: str, allow_private: bool) -> str | None:
    """Why a URL's host is refused before any DNS lookup: an internal address literal or a
    localhost name (RFC 6761). None when only resolution can tell."""
    ip = literal(host)
    if ip is not None:
        why = refusal(ip, allow_private)
        return None if why is None else f"{host} is {why}"
    name = host.lower().rstrip(".")
    if not allow_private and (name == "localhost" or name.endswith(".localhost")):
        return f"{host} is a loopback name"
    return None


def check_literal(url: str, allow_private: bool) -> Target:
    """The API's check: a well-formed URL whose host is not an internal literal. Names are
    checked again, after resolution, by the worker when it calls back."""
    target = parse_url(url)
    why = host_refusal(target.host, allow_private)
    if why is not None:
        raise CallbackRefused(why)
    return target


def refusal(ip: Address, allow_private: bool) -> str | None:
    """Why a connection to `ip` is refused, as a noun phrase ('a loopback address'), or None
    when it is allowed."""
    judge_itself = True
    if isinstance(ip, ipaddress.IPv6Address):
        if not allow_private and ip in NAT64_LOCAL:
            return "a local-use NAT64 address"
        for form, carried in carried_ipv4(ip):
            why = _own_refusal(carried, allow_private)
            if why is not None:
                return f"the {form} form of {carried}, {why}"
        # These forms reach exactly what they carry; the prefix itself says nothing more
        # (and Python calls 64:ff9b::/96 reserved, which would refuse every DNS64 answer).
        judge_itself = not any(ip in n for n in (IPV4_MAPPED, IPV4_TRANSLATED, NAT64))
    return _own_refusal(ip, allow_private) if judge_itself else None


def carried_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """(form, IPv4 address) for each IPv4 address this IPv6 address carries."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in IPV4_MAPPED:
        return [("IPv4-mapped", low32)]
    if ip in IPV4_TRANSLATED:
        return [("IPv4-translated", low32)]
    if ip in NAT64 or ip in NAT64_LOCAL:
        # Local-use prefixes may be shorter than /96 (RFC 6052 2.2); the /96 layout is the
        # one checked here, and the prefix as a whole is refused unless relaxed.
        return [("NAT64", low32)]
    if ip.sixtofour is not None:
        return [("6to4", ip.sixtofour)]
    if ip.teredo is not None:
        server, client = ip.teredo
        return [("Teredo", client), ("Teredo", server)]
    if ip in IPV4_COMPATIBLE and int(ip) > 1:
        return [("IPv4-compatible", low32)]
    return []


def _own_refusal(ip: Address, allow_private: bool) -> str | None:
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in METADATA:
        return "the cloud metadata address"
    if allow_private:
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "a carrier-grade NAT address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global or ip.is_reserved:
        return "a reserved address"
    return None
