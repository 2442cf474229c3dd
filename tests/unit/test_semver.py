"""The SemVer matcher Piston's `version` selectors go through, against node-semver's answers."""

from __future__ import annotations

import pytest

from service.semver import Version, latest, parse_range, satisfies

# (version, selector, node-semver's satisfies())
CASES = [
    ("12.2.0", "12.2.0", True),
    ("12.2.0", "12.2.1", False),
    ("12.2.0", "*", True),
    ("12.2.0", "x", True),
    ("12.2.0", "", True),
    ("3.11.2", "3.x", True),
    ("3.11.2", "3.X", True),
    ("3.11.2", "3", True),
    ("4.0.0", "3", False),
    ("3.11.2", "3.11", True),
    ("3.12.0", "3.11", False),
    ("3.11.2", "3.11.x", True),
    ("3.11.2", "3.11.*", True),
    ("3.11.2", "~3.11.0", True),
    ("3.12.0", "~3.11.0", False),
    ("3.11.0", "~3.11.1", False),
    ("1.2.3", "~>1.2", True),
    ("1.9.0", "~1", True),
    ("2.0.0", "~1", False),
    ("1.2.3", "^1.0.0", True),
    ("2.0.0", "^1.0.0", False),
    ("0.2.5", "^0.2.3", True),
    ("0.3.0", "^0.2.3", False),
    ("0.0.3", "^0.0.3", True),
    ("0.0.4", "^0.0.3", False),
    ("1.9.0", "^1.2.x", True),
    ("1.1.0", "^1.2.x", False),
    ("0.0.9", "^0.0.x", True),
    ("0.1.0", "^0.0.x", False),
    ("0.9.0", "^0.x", True),
    ("1.0.0", "^0.x", False),
    ("1.9.9", ">=1.2.3 <2.0.0", True),
    ("2.0.0", ">=1.2.3 <2.0.0", False),
    ("1.2.3", ">= 1.2.3", True),
    ("1.5.0", "1.2 - 2.3.4", True),
    ("1.1.9", "1.2 - 2.3.4", False),
    ("2.3.5", "1.2 - 2.3.4", False),
    ("2.3.9", "1.2.3 - 2.3", True),
    ("2.4.0", "1.2.3 - 2.3", False),
    ("1.0.0", "<1.0.0 || >=2.0.0", False),
    ("2.1.0", "<1.0.0 || >=2.0.0", True),
    ("1.2.3", "1.x || >=2.5.0 || 5.0.0 - 7.2.3", True),
    ("2.1.0", "1.x || >=2.5.0 || 5.0.0 - 7.2.3", False),
    ("6.0.0", "1.x || >=2.5.0 || 5.0.0 - 7.2.3", True),
    ("1.3.0", ">1.2", True),
    ("1.2.9", ">1.2", False),
    ("2.0.0", ">1", True),
    ("1.9.9", ">1", False),
    ("1.2.9", "<=1.2", True),
    ("1.3.0", "<=1.2", False),
    ("1.1.9", "<1.2", True),
    ("1.2.0", "<1.2", False),
    ("1.2.3", ">=1.2", True),
    ("1.2.3", "v1.2.3", True),
    ("1.2.3", "=1.2.3", True),
    ("1.2.3", "=1.2", True),
    ("1.2.3", ">*", False),
    ("1.2.3", "<*", False),
    ("1.2.3", ">=*", True),
    # Prereleases are in a range only next to a comparator with one of the same release.
    ("2.0.0-beta", ">=1.0.0", False),
    ("1.2.3-beta.2", ">=1.2.3-beta.1", True),
    ("1.2.3-beta.10", ">1.2.3-beta.9", True),
    ("1.2.3-alpha", "<1.2.3", False),
    ("1.2.3-alpha", "1.2.x", False),
    ("1.2.3", ">1.2.3-beta", True),
    ("1.2.3+build.5", "1.2.3", True),
    # Not ranges, or not versions: nothing matches, as node-semver.
    ("1.2.3", "not-a-version", False),
    ("1.2.3", "1.2.3.4", False),
    ("1.2.3", "01.2.3", False),
    ("1.2.3", ">>1.2.3", False),
    ("1.2", "*", False),
    ("6.8.0.105", "*", False),
]


@pytest.mark.parametrize(("version", "selector", "expected"), CASES)
def test_satisfies_as_node_semver(version: str, selector: str, expected: bool) -> None:
    assert satisfies(version, selector) is expected


def test_versions_parse_and_order_by_precedence() -> None:
    assert Version.parse("1.2.3") == Version(1, 2, 3)
    assert Version.parse("v1.2.3-rc.1+b7") == Version(1, 2, 3, ("rc", 1))
    assert [Version.parse(t) for t in ("1.2", "01.2.3", "1.2.3-", "")] == [None] * 4
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11"]
    order += ["1.0.0-rc.1", "1.0.0", "1.10.0"]
    keys = [Version.parse(v).key() for v in order]  # type: ignore[union-attr]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert str(Version(1, 0, 0, ("rc", 1))) == "1.0.0-rc.1"


def test_latest_and_invalid_ranges() -> None:
    assert latest(["1.2.3", "1.10.0", "1.9.9", "bad"]) == "1.10.0"
    assert latest(["bad"]) is None
    assert parse_range("1.2.3 || nope") is None
    assert parse_range("1.x ||") is not None and satisfies("9.0.0", "1.x ||")
