"""The package mirrors a setup box may reach: the host's apt sources, pip's indexes, and the
operator's STOCKADE_SETUP_MIRRORS, as (address, port) pairs resolved on the host and local
directories bound read-only."""

from __future__ import annotations

import configparser
import glob
import os
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from sandbox.images.build import parse_mirrors
from sandbox.settings import setting

SETUP_MIRRORS = setting(
    "STOCKADE_SETUP_MIRRORS",
    (),
    "more package mirrors setup boxes may reach (URLs, comma-separated), beside the host's "
    "apt sources and pip indexes",
)
PIP_DEFAULT_INDEX = "https://pypi.org/simple"
# PyPI's index links its files on another host (PyPI's JSON and simple API docs).
PYPI_FILES = "https://files.pythonhosted.org/"
# pip's configuration files, lowest priority first (pip's "Configuration" docs: global, user).
PIP_CONFIGS = (
    "/etc/pip.conf",
    "/etc/xdg/pip/pip.conf",
    "~/.pip/pip.conf",
    "~/.config/pip/pip.conf",
)
_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class PipIndexes:
    """pip's sources as the host's pip would use them: index-url, extra-index-url, find-links."""

    index: str = PIP_DEFAULT_INDEX
    extra: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    cert: str = ""  # a CA bundle of the host's for pip's HTTPS (pip's `cert`)

    def urls(self) -> tuple[str, ...]:
        """Every source pip may fetch from, PyPI's file host among them when PyPI is one."""
        sources = (self.index, *self.extra)
        pypi = any(endpoint(u) == endpoint(PIP_DEFAULT_INDEX) for u in sources)
        return (*sources, *self.find_links, *((PYPI_FILES,) if pypi else ()))


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


def endpoint(url: str) -> Endpoint | None:
    """(host, port) of an http(s) URL; None for a local one (file: or a path)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in _PORTS or not parts.hostname:
        return None
    return Endpoint(parts.hostname, parts.port or _PORTS[parts.scheme])


def local_dir(url: str) -> str | None:
    """The directory of a file: URL or an absolute path; None for anything else."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return urllib.parse.unquote(parts.path)
    if not parts.scheme and url.startswith("/"):
        return url
    return None


def local_root(url: str, index: bool) -> str | None:
    """The host directory a local source needs bound: its own, or for an index named
    `simple` the one above it, since such an index's links are relative to it and lead out
    of it (`../../files/...`, as in PEP 503 mirrors laid out by bandersnatch and devpi)."""
    d = local_dir(url)
    if d is None:
        return None
    d = d.rstrip("/") or "/"
    if index and os.path.basename(d) == "simple":
        return os.path.dirname(d)
    return d


def parse_pip_config(texts: list[str], env: Mapping[str, str]) -> PipIndexes:
    """Pure: pip's index settings from its config files' text (lowest priority first), then
    PIP_INDEX_URL, PIP_EXTRA_INDEX_URL and PIP_FIND_LINKS, which win as they do for pip."""
    values: dict[str, str] = {}
    for text in texts:
        cp = configparser.ConfigParser(interpolation=None)
        try:
            cp.read_string(text)
        except configparser.Error:
            continue
        for section in ("global", "install"):
            if cp.has_section(section):
                values.update({k: v for k, v in cp.items(section) if k in _PIP_KEYS})
    for key, var in _PIP_KEYS.items():
        if env.get(var):
            values[key] = env[var]
    return PipIndexes(
        values.get("index-url", "").strip() or PIP_DEFAULT_INDEX,
        tuple(values.get("extra-index-url", "").split()),
        tuple(values.get("find-links", "").split()),
        values.get("cert", "").strip(),
    )


_PIP_KEYS = {
    "cert": "PIP_CERT",
    "index-url": "PIP_INDEX_URL",
    "extra-index-url": "PIP_EXTRA_INDEX_URL",
    "find-links": "PIP_FIND_LINKS",
}


def host_pip_indexes() -> PipIndexes:
    texts = []
    for path in PIP_CONFIGS:
        try:
            with open(os.path.expanduser(path)) as f:
                texts.append(f.read())
        except OSError:
            continue
    return parse_pip_config(texts, os.environ)


def host_apt_uris() -> list[str]:
    """Every `deb` URI of the host's apt sources (sources.list(5), both formats)."""
    files = ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]
    files += sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    uris: list[str] = []
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        uris += [u for u, _ in parse_mirrors(text, path.endswith(".sources")) if u not in uris]
    return uris


@dataclass(frozen=True)
class Resolved:
    """What a setup box's network gets: /etc/hosts lines, the (address, port) pairs its
    firewall lets through, and the names that did not resolve."""

    hosts: tuple[tuple[str, str], ...]  # (address, name)
    allowed: tuple[tuple[str, int], ...]  # (IPv4 address, TCP port)
    unresolved: tuple[str, ...]


def resolve(urls: list[str]) -> Resolved:
    """Resolve every http(s) URL's name on the host (IPv4 only: boxes have no IPv6); local
    URLs are left to the caller."""
    hosts: dict[tuple[str, str], None] = {}
    allowed: dict[tuple[str, int], None] = {}
    unresolved: dict[str, None] = {}
    for url in urls:
        ep = endpoint(url)
        if ep is None:
            continue
        try:
            infos = socket.getaddrinfo(ep.host, ep.port, socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            unresolved[ep.host] = None
            continue
        for info in infos:
            addr = str(info[4][0])
            hosts[(addr, ep.host)] = None
            allowed[(addr, ep.port)] = None
    return Resolved(tuple(hosts), tuple(allowed), tuple(unresolved))
