"""Built-in checkers and the exit-code conventions of boxed ones (no box needed)."""

from __future__ import annotations

import pytest

from sandbox.result import BoxResult, Status
from worker import checkers
from worker.jobs.model import CheckerSpec


def test_exact_is_byte_for_byte() -> None:
    assert checkers.exact(b"1 2\n", b"1 2\n").accepted
    assert not checkers.exact(b"1 2 \n", b"1 2\n").accepted
    assert not checkers.exact(b"1 2", b"1 2\n").accepted


@pytest.mark.parametrize(
    ("out", "ans", "ok"),
    [
        (b"a  \nb\t\n\n\n", b"a\nb", True),
        (b"a\nb", b"a\nb\n", True),
        (b"a\r\nb\r\n", b"a\nb\n", True),  # \r is trailing whitespace of its line
        (b" a\nb", b"a\nb", False),  # leading whitespace counts
        (b"a\n\nb", b"a\nb", False),  # a blank line inside counts
        (b"a b", b"a  b", False),
    ],
)
def test_judge0_trims_trailing_whitespace_per_line_and_at_the_end(
    out: bytes, ans: bytes, ok: bool
) -> None:
    assert checkers.judge0(out, ans).accepted is ok


def test_tokens_ignore_all_whitespace_and_optionally_case() -> None:
    assert checkers.tokens(b"1\n2   3", b"1 2 3\n").accepted
    assert not checkers.tokens(b"1 2", b"1 2 3").accepted
    assert not checkers.tokens(b"YES", b"yes").accepted
    assert checkers.tokens(b"YES", b"yes", case_sensitive=False).accepted


@pytest.mark.parametrize(
    ("out", "ans", "ok"),
    [
        (b"3.1415927", b"3.14159265", True),
        (b"3.1416", b"3.14159265", False),
        (b"1000000.5", b"1000000.0", True),  # relative 1e-6 of a large answer
        (b"1e-9", b"0", True),
        (b"x 1.0", b"x 1.0000001", True),
        (b"y 1.0", b"x 1.0", False),
        (b"nan", b"1.0", False),
        (b"inf", b"1.0", False),
        (b"1.0 2.0", b"1.0", False),
    ],
)
def test_floats_within_absolute_or_relative_tolerance(out: bytes, ans: bytes, ok: bool) -> None:
    assert checkers.floats(out, ans, 1e-6, 1e-6).accepted is ok


def test_compare_dispatches_and_refuses_custom_without_box() -> None:
    assert checkers.compare(CheckerSpec("token"), b"1  2", b"1 2").accepted
    assert not checkers.compare(CheckerSpec("exact"), b"1  2", b"1 2").accepted
    assert checkers.compare(CheckerSpec("custom"), b"", b"").failed


def test_messages_name_the_first_difference() -> None:
    assert "line 2" in checkers.judge0(b"a\nb", b"a\nc").message
    assert "token 3" in checkers.tokens(b"1 2 4", b"1 2 3").message


def _result(status: Status, code: int | None, stderr: bytes = b"") -> BoxResult:
    return BoxResult(status, code, None, 0.0, 0.0, 0, b"", stderr, "")


@pytest.mark.parametrize(
    ("convention", "status", "code", "accepted", "failed"),
    [
        ("testlib", Status.OK, 0, True, False),
        ("testlib", Status.RE, 1, False, False),
        ("testlib", Status.RE, 2, False, False),
        ("testlib", Status.RE, 3, False, True),
        ("testlib", Status.TO, None, False, True),
        ("icpc", Status.RE, 42, True, False),
        ("icpc", Status.RE, 43, False, False),
        ("icpc", Status.OK, 0, False, True),
        ("icpc", Status.XX, None, False, True),
    ],
)
def test_exit_conventions(
    convention: str, status: Status, code: int | None, accepted: bool, failed: bool
) -> None:
    out = checkers.exit_outcome(convention, _result(status, code, b"why"))
    assert (out.accepted, out.failed) == (accepted, failed)


def test_checker_args_follow_each_convention() -> None:
    assert checkers.checker_args("testlib") == ("judge/input", "judge/output", "judge/answer")
    assert checkers.checker_args("icpc") == ("judge/input", "judge/answer", "judge/feedback/")
