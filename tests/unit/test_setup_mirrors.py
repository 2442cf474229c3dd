"""Setup boxes' pure parts: which mirrors pip and apt name, and the nftables table they get."""

from __future__ import annotations

import pytest

from sandbox.images.mirrors import (
    PIP_DEFAULT_INDEX,
    PYPI_FILES,
    Endpoint,
    PipIndexes,
    endpoint,
    local_root,
    parse_pip_config,
)
from sandbox.images.setupbox import SetupJob, hosts_text
from sandbox.images.setupnet import plan_mirror_rules, table_name


def test_pip_config_files_then_environment() -> None:
    system = "[global]\nindex-url = https://mirror.example/simple\ncert = /etc/ca.pem\n"
    user = "[install]\nextra-index-url = file:///opt/pypi/simple https://x.example/simple\n"
    got = parse_pip_config([system, user], {"PIP_FIND_LINKS": "/opt/wheels"})
    assert got == PipIndexes(
        "https://mirror.example/simple",
        ("file:///opt/pypi/simple", "https://x.example/simple"),
        ("/opt/wheels",),
        "/etc/ca.pem",
    )
    env = {"PIP_INDEX_URL": "http://10.0.0.5:3141/root/pypi/+simple/"}
    assert parse_pip_config([system], env).index == env["PIP_INDEX_URL"]


def test_pip_defaults_to_pypi_and_its_file_host() -> None:
    got = parse_pip_config(["not [an ini"], {})
    assert got.index == PIP_DEFAULT_INDEX
    assert got.urls() == (PIP_DEFAULT_INDEX, PYPI_FILES)
    only_local = PipIndexes("file:///opt/pypi/simple")
    assert PYPI_FILES not in only_local.urls()


def test_endpoints_and_local_roots() -> None:
    assert endpoint("http://deb.debian.org/debian") == Endpoint("deb.debian.org", 80)
    assert endpoint("https://pypi.org/simple") == Endpoint("pypi.org", 443)
    assert endpoint("http://10.0.0.5:3141/simple") == Endpoint("10.0.0.5", 3141)
    assert endpoint("file:///opt/pypi/simple") is None
    assert endpoint("ftp://x.example/") is None
    # A `simple` index links its files from the directory above it.
    assert local_root("file:///opt/pypi/simple/", True) == "/opt/pypi"
    assert local_root("file:///opt/pypi/simple", False) == "/opt/pypi/simple"
    assert local_root("/opt/wheels", False) == "/opt/wheels"
    assert local_root("https://pypi.org/simple", True) is None


def test_mirror_rules_allow_only_the_pairs() -> None:
    rules = plan_mirror_rules("sbx7", (("203.0.113.80", 80), ("203.0.113.80", 443)))
    assert f"table inet {table_name('sbx7')}" in rules
    assert '"sbx7" ip daddr . tcp dport { 203.0.113.80 . 80, 203.0.113.80 . 443 } accept' in rules
    accept, reset = rules.index("accept\n"), rules.index("reject with tcp reset")
    assert accept < reset  # the pairs first, then everything else from the box refused
    assert 'iifname "sbx7" counter reject with icmpx admin-prohibited' in rules
    assert "hook input priority filter - 10" in rules
    # Without a mirror the box reaches nothing at all.
    none = plan_mirror_rules("sbx7", ())
    assert " accept" not in none.replace("policy accept", "")


def test_mirror_rules_refuse_what_is_not_an_address() -> None:
    with pytest.raises(ValueError):
        plan_mirror_rules("sbx1", (("deb.debian.org; flush ruleset", 80),))


def test_hosts_file_names_every_mirror() -> None:
    text = hosts_text((("203.0.113.80", "deb.debian.org"), ("203.0.113.80", "pypi.org")))
    assert text.splitlines() == [
        "127.0.0.1 localhost setup",
        "203.0.113.80 deb.debian.org",
        "203.0.113.80 pypi.org",
    ]
    assert SetupJob("true").wall_time_s > 0
