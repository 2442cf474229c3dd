"""Which tier each box of a submission asks for: the request's, the language's default and the
operator's minimum, strongest wins; a microvm always boots the language's image."""

from __future__ import annotations

import dataclasses

import pytest

from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec, strongest
from sandbox.stdio import Stdio
from worker.jobs.languages import load_languages
from worker.jobs.model import CheckerSpec, Program, Submission, Verdict
from worker.judge import Judge


class Recorder:
    """Stands in for the launcher: no box runs, every spec is kept (the kernel side of
    tiers is tested in tests/privileged/test_tier_*.py)."""

    def __init__(self) -> None:
        self.specs: list[BoxSpec] = []

    def run(self, spec: BoxSpec, stdio: Stdio | None = None) -> BoxResult:
        self.specs.append(spec)
        files = {"/box/main": b"\x7fELF"} if spec.collect else {}
        return BoxResult(Status.OK, 0, None, 0.01, 0.02, 1 << 20, b"", b"", "", files=files)


def test_strongest_never_lowers() -> None:
    assert strongest("", "", "") == "container"
    assert strongest("container", "gvisor", "") == "gvisor"
    assert strongest("microvm", "container", "gvisor") == "microvm"


@pytest.mark.parametrize(
    ("asked", "language", "minimum", "want"),
    [
        ("", "container", "", "container"),
        ("gvisor", "container", "", "gvisor"),
        ("container", "gvisor", "", "gvisor"),
        ("container", "container", "microvm", "microvm"),
        ("microvm", "container", "gvisor", "microvm"),
    ],
)
def test_every_box_of_a_submission_runs_in_the_settled_tier(
    asked: str, language: str, minimum: str, want: str
) -> None:
    langs = load_languages()
    langs[54] = dataclasses.replace(langs[54], tier=language)  # C++: a compile and a run box
    rec = Recorder()
    judge = Judge(rec, langs, rootfs="host", min_tier=minimum)  # type: ignore[arg-type]
    sub = Submission(source_code="int main(){}", language_id=54, tier=asked)
    assert judge.judge(sub).verdict is Verdict.AC
    assert [s.tier for s in rec.specs] == [want, want]
    # The host's /usr is never handed to a VM: a microvm runs the language's own image.
    want_rootfs = langs[54].image if want == "microvm" else "host"
    assert {s.rootfs for s in rec.specs} == {want_rootfs}


@pytest.mark.parametrize("asked", ["gvisor", "microvm"])
def test_checker_and_interactor_boxes_run_in_the_submissions_tier(asked: str) -> None:
    """A checker or interactor is client code too: every one of its boxes (compile and run)
    takes the submission's tier, never the container default of its language."""
    langs = load_languages()
    rec = Recorder()
    judge = Judge(rec, langs, rootfs="host")  # type: ignore[arg-type]
    checker = Program("import sys\nsys.exit(0)\n", 71)
    cpp_checker = Program("int main(){}", 54)
    for helper in (checker, cpp_checker):
        rec.specs.clear()
        sub = Submission(
            source_code="print(1)",
            language_id=71,
            tier=asked,
            expected_output="1\n",
            checker=CheckerSpec(kind="custom", program=helper),
        )
        assert judge.judge(sub).verdict is Verdict.AC
        assert len(rec.specs) == (2 if helper is checker else 3)
        assert {s.tier for s in rec.specs} == {asked}, [(s.argv[:2], s.tier) for s in rec.specs]
    rec.specs.clear()
    sub = Submission(source_code="print(1)", language_id=71, tier=asked, interactor=checker)
    judge.judge(sub)
    assert len(rec.specs) == 2 and {s.tier for s in rec.specs} == {asked}
