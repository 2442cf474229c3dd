"""SemVer versions and range selectors, as Piston resolves a request's `version` (node-semver's
grammar: `1.2.3`, `*`, `3.x`, `3`, `~1.2`, `^1.2.3`, `>=1 <2`, `1.2 - 2.3`, `a || b`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A version's precedence key (SemVer 2.0.0, section 11): a release sorts after its prereleases,
# numeric identifiers before alphanumeric ones and by value.
Key = tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]

_NUM = r"0|[1-9]\d*"
_PART = r"x|X|\*|0|[1-9]\d*"
_PRE = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_VERSION = re.compile(rf"^v?({_NUM})\.({_NUM})\.({_NUM})(?:-({_PRE}))?(?:\+{_PRE})?$")
_PARTIAL = re.compile(rf"^v?({_PART})(?:\.({_PART})(?:\.({_PART})(?:-({_PRE}))?(?:\+{_PRE})?)?)?$")
_COMPARATOR = re.compile(r"^(<=|>=|<|>|=|~>|~|\^)?\s*(\S+)$")
_HYPHEN = re.compile(r"^(\S+)\s+-\s+(\S+)$")
_OPERATOR_SPACE = re.compile(r"(<=|>=|<|>|=|~>|~|\^)\s+")


@dataclass(frozen=True)
class Version:
    """A full SemVer version (build metadata dropped: it has no precedence)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version | None:
        m = _VERSION.match(text.strip())
        if m is None:
            return None
        return cls(int(m[1]), int(m[2]), int(m[3]), _identifiers(m[4]))

    def key(self) -> Key:
        pre = tuple((0, p) if isinstance(p, int) else (1, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __str__(self) -> str:
        pre = "-" + ".".join(map(str, self.prerelease)) if self.prerelease else ""
        return f"{self.major}.{self.minor}.{self.patch}{pre}"


def _identifiers(pre: str | None) -> tuple[int | str, ...]:
    if not pre:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in pre.split("."))


# The lowest version of a release line: `<2.0.0-0` excludes 2.0.0's prereleases too.
_LOWEST = (0,)


@dataclass(frozen=True)
class _Comparator:
    op: str  # one of < <= > >= =
    version: Version

    def test(self, v: Version) -> bool:
        a, b = v.key(), self.version.key()
        return {
            "<": a < b,
            "<=": a <= b,
            ">": a > b,
            ">=": a >= b,
            "=": a == b,
        }[self.op]


def satisfies(version: str | Version, selector: str) -> bool:
    """Whether `version` is in the range `selector`; an invalid version or range matches
    nothing (as node-semver's satisfies() answers false)."""
    v = version if isinstance(version, Version) else Version.parse(version)
    sets = parse_range(selector)
    if v is None or sets is None:
        return False
    return any(_set_allows(s, v) for s in sets)


def parse_range(selector: str) -> list[list[_Comparator]] | None:
    """The range as comparator sets joined by `||`; None when it is not a valid range."""
    sets = []
    for part in selector.split("||"):
        comparators = _parse_set(part.strip())
        if comparators is None:
            return None
        sets.append(comparators)
    return sets


def _set_allows(comparators: list[_Comparator], v: Version) -> bool:
    if not all(c.test(v) for c in comparators):
        return False
    if not v.prerelease:
        return True
    # A prerelease is in range only where a comparator names a prerelease of the same
    # major.minor.patch (node-semver), so `>1.2.3-alpha` never admits 2.0.0-beta.
    same = (v.major, v.minor, v.patch)
    return any(
        c.version.prerelease
        and c.version.prerelease != _LOWEST
        and (c.version.major, c.version.minor, c.version.patch) == same
        for c in comparators
    )


def _parse_set(text: str) -> list[_Comparator] | None:
    if text == "":
        return []  # an empty set is `*`
    hyphen = _HYPHEN.match(text)
    if hyphen:
        return _hyphen(hyphen[1], hyphen[2])
    out: list[_Comparator] = []
    for word in _OPERATOR_SPACE.sub(r"\1", text).split():
        parsed = _comparator(word)
        if parsed is None:
            return None
        out += parsed
    return out


Partial = tuple[int | None, int | None, int | None, tuple[int | str, ...]]


def _partial(text: str) -> Partial | None:
    """`1`, `1.2`, `1.x`, `*`, `1.2.3-beta`: the numbers given (None for a wildcard or a
    missing part; every part after a wildcard is a wildcard too)."""
    m = _PARTIAL.match(text)
    if m is None:
        return None
    nums: list[int | None] = []
    for part in (m[1], m[2], m[3]):
        wild = part is None or part in ("x", "X", "*") or (nums and nums[-1] is None)
        nums.append(None if wild else int(part))
    pre = _identifiers(m[4]) if nums[2] is not None else ()
    return nums[0], nums[1], nums[2], pre


def _v(major: int, minor: int = 0, patch: int = 0, pre: tuple[int | str, ...] = ()) -> Version:
    return Version(major, minor, patch, pre)


def _comparator(word: str) -> list[_Comparator] | None:
    m = _COMPARATOR.match(word)
    if m is None:
        return None
    op, p = m[1] or "=", _partial(m[2])
    if p is None:
        return None
    if op in ("~", "~>"):
        return _tilde(p)
    if op == "^":
        return _caret(p)
    return _primitive(op, p)


def _span(p: Partial) -> tuple[Version, Version | None]:
    """The versions a partial names: from its lowest to (exclusive) the next release line."""
    major, minor, patch, pre = p
    if major is None:
        return _v(0, 0, 0), None
    if minor is None:
        return _v(major), _v(major + 1, 0, 0, _LOWEST)
    if patch is None:
        return _v(major, minor), _v(major, minor + 1, 0, _LOWEST)
    return _v(major, minor, patch, pre), None


def _primitive(op: str, p: Partial) -> list[_Comparator]:
    """A plain comparison; a partial stands for its whole line (`<=1.2` is `<1.3.0-0`)."""
    low, high = _span(p)
    if p[2] is not None:  # a full version compares as it is
        return [_Comparator(op, low)]
    if op == "=":
        return [_Comparator(">=", low)] + ([_Comparator("<", high)] if high else [])
    if p[0] is None:  # `>=*` and `<=*` match everything, `>*` and `<*` nothing
        return [] if op in (">=", "<=") else [_Comparator("<", _v(0, 0, 0, _LOWEST))]
    assert high is not None
    return {
        ">=": [_Comparator(">=", low)],
        "<": [_Comparator("<", _v(low.major, low.minor, 0, _LOWEST))],
        ">": [_Comparator(">=", _drop_pre(high))],  # `>1.2` is `>=1.3.0`
        "<=": [_Comparator("<", high)],
    }[op]


def _drop_pre(v: Version) -> Version:
    return Version(v.major, v.minor, v.patch)


def _tilde(p: Partial) -> list[_Comparator]:
    """`~1.2.3` is `>=1.2.3 <1.3.0-0`; `~1.2` is `>=1.2.0 <1.3.0-0`; `~1` is `>=1.0.0 <2.0.0-0`."""
    major, minor, patch, pre = p
    if major is None:
        return []
    if minor is None:
        return [_Comparator(">=", _v(major)), _Comparator("<", _v(major + 1, 0, 0, _LOWEST))]
    low = _v(major, minor, patch or 0, pre)
    return [_Comparator(">=", low), _Comparator("<", _v(major, minor + 1, 0, _LOWEST))]


def _caret(p: Partial) -> list[_Comparator]:
    """Changes that do not modify the left-most non-zero part: `^1.2.3` is `<2.0.0-0`,
    `^0.2.3` is `<0.3.0-0`, `^0.0.3` is `<0.0.4-0`; `^0.0` is `<0.1.0-0`, `^0` is `<1.0.0-0`."""
    major, minor, patch, pre = p
    if major is None:
        return []
    low = _v(major, minor or 0, patch or 0, pre)
    if major > 0 or minor is None:
        high = _v(major + 1, 0, 0, _LOWEST)
    elif minor > 0 or patch is None:
        high = _v(0, minor + 1, 0, _LOWEST)
    else:
        high = _v(0, 0, patch + 1, _LOWEST)
    return [_Comparator(">=", low), _Comparator("<", high)]


def _hyphen(left: str, right: str) -> list[_Comparator] | None:
    """`1.2 - 2.3.4` is `>=1.2.0 <=2.3.4`; a partial upper end takes its whole line:
    `1.2.3 - 2.3` is `<2.4.0-0`."""
    low, high = _partial(left), _partial(right)
    if low is None or high is None:
        return None
    out = [] if low[0] is None else [_Comparator(">=", _span(low)[0])]
    if high[0] is None:
        return out
    if high[2] is not None:
        return [*out, _Comparator("<=", _span(high)[0])]
    top = _span(high)[1]
    assert top is not None
    return [*out, _Comparator("<", top)]


def latest(versions: list[str]) -> str | None:
    """The highest of SemVer versions (invalid ones ignored)."""
    parsed = [(v, Version.parse(v)) for v in versions]
    valid = [(p.key(), v) for v, p in parsed if p is not None]
    return max(valid)[1] if valid else None
