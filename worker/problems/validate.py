"""The format's default output validator and its flags, and what a custom validator leaves in
its feedback directory."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from worker.jobs.packages.format import ProblemError

FLAG_WORDS = ("case_sensitive", "space_change_sensitive")
FLAG_NUMBERS = ("float_tolerance", "float_absolute_tolerance", "float_relative_tolerance")
_PIECES = re.compile(rb"(\s+)")
_KEEP = 1000


@dataclass(frozen=True)
class DefaultFlags:
    case_sensitive: bool = False
    space_change_sensitive: bool = False
    abs_tol: float | None = None
    rel_tol: float | None = None


def parse_flags(words: Sequence[str]) -> DefaultFlags:
    """validator_flags for the default validator: the two switches, and float_tolerance e
    (both absolute and relative) or float_absolute_tolerance / float_relative_tolerance."""
    flags = DefaultFlags()
    values: dict[str, float] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word in FLAG_WORDS:
            flags = DefaultFlags(**{**flags.__dict__, word: True})
        elif word in FLAG_NUMBERS:
            if i + 1 >= len(words):
                raise ProblemError(f"validator flags: {word} needs a number")
            try:
                values[word] = float(words[i + 1])
            except ValueError:
                raise ProblemError(f"validator flags: {word} {words[i + 1]!r}") from None
            i += 1
        else:
            raise ProblemError(f"validator flags: {word!r} is not a default validator flag")
        i += 1
    both = values.get("float_tolerance")
    abs_tol = values.get("float_absolute_tolerance", both)
    rel_tol = values.get("float_relative_tolerance", both)
    return DefaultFlags(flags.case_sensitive, flags.space_change_sensitive, abs_tol, rel_tol)


def default_validate(flags: DefaultFlags, output: bytes, answer: bytes) -> tuple[bool, str]:
    """Token by token; with space_change_sensitive the whitespace between tokens too. With a
    float tolerance, an answer token that is a number (nan and inf in any case included)
    takes any number within the absolute or the relative tolerance."""
    if flags.space_change_sensitive:
        out, ans = _PIECES.split(output), _PIECES.split(answer)
    else:
        out, ans = output.split(), answer.split()
    for i, (o, a) in enumerate(zip(out, ans, strict=False), 1):
        if a.isspace() or o.isspace() or not a or not o:
            if o != a:
                return False, f"whitespace differs at piece {i}"
            continue
        ok, why = _token(flags, o, a)
        if not ok:
            return False, f"token {i}: {why}"
    if len(out) != len(ans):
        return False, f"expected {len(ans)} tokens, got {len(out)}"
    return True, ""


def _token(flags: DefaultFlags, got: bytes, want: bytes) -> tuple[bool, str]:
    if flags.abs_tol is not None or flags.rel_tol is not None:
        w = _float(want)
        if w is not None:
            g = _float(got)
            if g is None:
                return False, f"expected a number near {_show(want)}, got {_show(got)}"
            if not _close(g, w, flags.abs_tol or 0.0, flags.rel_tol or 0.0):
                return False, f"{_show(got)} is not within tolerance of {_show(want)}"
            return True, ""
    same = got == want if flags.case_sensitive else got.lower() == want.lower()
    return same, "" if same else f"expected {_show(want)}, got {_show(got)}"


def _float(token: bytes) -> float | None:
    """Any float Python reads, nan and inf (and infinity) in any case among them; never a
    hexadecimal or an underscore-grouped number, which the format's validator does not take."""
    if b"_" in token or b"x" in token.lower():
        return None
    try:
        return float(token)
    except ValueError:
        return None


def _close(got: float, want: float, abs_tol: float, rel_tol: float) -> bool:
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    if math.isinf(want) or math.isinf(got):
        return got == want
    return abs(got - want) <= abs_tol or abs(got - want) <= rel_tol * abs(want)


def _show(token: bytes) -> str:
    return repr(token[:40].decode("utf-8", "replace"))


@dataclass(frozen=True)
class Feedback:
    """A validator's feedback directory: judgemessage.txt, teammessage.txt, score.txt."""

    judge_message: str = ""
    team_message: str = ""
    score: float | None = None
    error: str = ""


def read_feedback(files: Mapping[str, bytes]) -> Feedback:
    """Collected files by path; only their names matter (the directory is the validator's)."""
    by_name = {path.rsplit("/", 1)[-1]: data for path, data in files.items()}

    def text(name: str) -> str:
        return by_name.get(name, b"")[:_KEEP].decode("utf-8", "replace").strip()

    score: float | None = None
    error = ""
    if "score.txt" in by_name:
        try:
            score = float(text("score.txt"))
        except ValueError:
            error = f"score.txt is not a number: {text('score.txt')[:40]!r}"
        else:
            if not math.isfinite(score):
                error, score = f"score.txt is not finite: {score}", None
    return Feedback(text("judgemessage.txt"), text("teammessage.txt"), score, error)
