"""Output checkers: exact, Judge0's trim rule, tokens, float tolerance, boxed custom programs."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec, FileIn
from worker.jobs.model import CheckerSpec

# testlib's exit codes (testlib.h: _ok, _wa, _pe, _fail) and the ICPC validator's (problem
# package format, "Output validators": 42 accepted, 43 wrong answer).
TESTLIB_OK, TESTLIB_WA, TESTLIB_PE = 0, 1, 2
ICPC_AC, ICPC_WA = 42, 43
# Where a boxed checker finds the case's files; relative to /box, beside its own artifacts.
DATA_DIR = "judge"
FEEDBACK_DIR = "judge/feedback/"
_MESSAGE_BYTES = 1000


@dataclass(frozen=True)
class Outcome:
    """A checker's answer. `failed` means the checker itself broke: an internal error."""

    accepted: bool
    message: str = ""
    failed: bool = False


def exact(output: bytes, answer: bytes) -> Outcome:
    if output == answer:
        return Outcome(True)
    return Outcome(False, _first_difference(output.split(b"\n"), answer.split(b"\n"), "line"))


def judge0_trim(text: bytes) -> bytes:
    """Judge0's rule: trailing whitespace trimmed on every line, then at the end."""
    return b"\n".join(line.rstrip() for line in text.split(b"\n")).rstrip()


def judge0(output: bytes, answer: bytes) -> Outcome:
    out, ans = judge0_trim(output), judge0_trim(answer)
    if out == ans:
        return Outcome(True)
    return Outcome(False, _first_difference(out.split(b"\n"), ans.split(b"\n"), "line"))


def tokens(output: bytes, answer: bytes, case_sensitive: bool = True) -> Outcome:
    out, ans = output.split(), answer.split()
    if not case_sensitive:
        out, ans = [t.lower() for t in out], [t.lower() for t in ans]
    if out == ans:
        return Outcome(True)
    return Outcome(False, _first_difference(out, ans, "token"))


def floats(output: bytes, answer: bytes, abs_tol: float, rel_tol: float) -> Outcome:
    """Tokens; where the answer's token is a number, the output's must be one within the
    absolute OR the relative tolerance (the ICPC default validator's rule)."""
    out, ans = output.split(), answer.split()
    if len(out) != len(ans):
        return Outcome(False, f"expected {len(ans)} tokens, got {len(out)}")
    for i, (o, a) in enumerate(zip(out, ans, strict=True), 1):
        want = _number(a)
        if want is None:
            if o != a:
                return Outcome(False, f"token {i}: expected {_show(a)}, got {_show(o)}")
            continue
        got = _number(o)
        if got is None:
            return Outcome(False, f"token {i}: expected a number near {_show(a)}, got {_show(o)}")
        if not _close(got, want, abs_tol, rel_tol):
            return Outcome(False, f"token {i}: {_show(o)} is not within tolerance of {_show(a)}")
    return Outcome(True)


def compare(spec: CheckerSpec, output: bytes, answer: bytes) -> Outcome:
    """The built-in checkers; a custom one needs a box (see run_custom)."""
    table: dict[str, Callable[[], Outcome]] = {
        "exact": lambda: exact(output, answer),
        "judge0": lambda: judge0(output, answer),
        "token": lambda: tokens(output, answer, spec.case_sensitive),
        "float": lambda: floats(output, answer, spec.abs_tolerance, spec.rel_tolerance),
    }
    check = table.get(spec.kind)
    if check is None:
        return Outcome(False, f"checker {spec.kind!r} needs a box", failed=True)
    return check()


# --- Custom checkers, run boxed -----------------------------------------------------------


class BoxedProgram(Protocol):
    """A compiled helper program: builds the box that runs it with extra args and files."""

    def box_spec(self, args: Sequence[str], files: Sequence[FileIn], stdin: bytes) -> BoxSpec: ...


def checker_files(inp: bytes, out: bytes, ans: bytes) -> tuple[FileIn, ...]:
    return (
        FileIn(f"{DATA_DIR}/input", inp),
        FileIn(f"{DATA_DIR}/output", out),
        FileIn(f"{DATA_DIR}/answer", ans),
        FileIn(f"{FEEDBACK_DIR}.keep", b""),  # the feedback directory must exist
    )


def checker_args(convention: str) -> tuple[str, ...]:
    d = DATA_DIR
    if convention == "icpc":
        return (f"{d}/input", f"{d}/answer", FEEDBACK_DIR)
    return (f"{d}/input", f"{d}/output", f"{d}/answer")


def run_custom(
    launcher: Launcher,
    program: BoxedProgram,
    convention: str,
    inp: bytes,
    out: bytes,
    ans: bytes,
    extra_args: Sequence[str] = (),
) -> Outcome:
    """testlib: `checker input output answer`; ICPC: `validator input answer feedback_dir`
    with the team's output on stdin. The checker is code of the problem's, but it reads the
    program's output, so it runs boxed like everything else."""
    args = (*checker_args(convention), *extra_args)
    stdin = out if convention == "icpc" else b""
    r = launcher.run(program.box_spec(args, checker_files(inp, out, ans), stdin))
    return exit_outcome(convention, r)


def exit_outcome(convention: str, r: BoxResult) -> Outcome:
    """A checker's or interactor's box result as an outcome."""
    text = (r.stderr or r.stdout)[:_MESSAGE_BYTES].decode("utf-8", "replace").strip()
    code = r.exit_code if r.status in (Status.OK, Status.RE) else None
    if convention == "icpc":
        if code == ICPC_AC:
            return Outcome(True, text)
        if code == ICPC_WA:
            return Outcome(False, text)
    else:
        if code == TESTLIB_OK:
            return Outcome(True, text)
        if code in (TESTLIB_WA, TESTLIB_PE):
            return Outcome(False, text)
    why = f"checker failed: {r.status} exit {r.exit_code} signal {r.signal} ({r.message})"
    return Outcome(False, f"{why}: {text}" if text else why, failed=True)


# --- Helpers ---------------------------------------------------------------------------------


def _number(token: bytes) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _close(got: float, want: float, abs_tol: float, rel_tol: float) -> bool:
    return abs(got - want) <= abs_tol or abs(got - want) <= rel_tol * abs(want)


def _show(token: bytes) -> str:
    text = token[:40].decode("utf-8", "replace")
    return repr(text + ("..." if len(token) > 40 else ""))


def _first_difference(out: list[bytes], ans: list[bytes], unit: str) -> str:
    for i, (o, a) in enumerate(zip(out, ans, strict=False), 1):
        if o != a:
            return f"{unit} {i}: expected {_show(a)}, got {_show(o)}"
    if len(out) < len(ans):
        return f"output ends early: {len(out)} {unit}s of {len(ans)}"
    return f"output goes on: {len(out)} {unit}s, expected {len(ans)}"
