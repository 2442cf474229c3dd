"""A language's self-test is judged as a submission is: its boxes are exactly the boxes the
Judge makes for the same program sent as a submission (argv, files and their modes, limits,
profile, rootfs, tier, collection), and its verdict decides whether the language is served."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, cast

import pytest

from sandbox.errors import SandboxError
from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec, validate
from sandbox.stdio import Stdio
from worker.jobs.languages import Language, load_languages
from worker.jobs.model import Submission
from worker.judge import Judge
from worker.selftest import self_test, self_test_all, zipped

if TYPE_CHECKING:
    from sandbox.launcher import Launcher

LANGUAGES = load_languages()
CASES = [pytest.param(lang, id=lang.key) for _, lang in sorted(LANGUAGES.items())]


class Recorder:
    """Stands in for the launcher: keeps every spec. A compile box hands back the files of
    its /box plus the language's executables; a run box prints `stdout` (by default the
    self-test's expected output, so that every box of the self-test runs)."""

    def __init__(self, language: Language, stdout: bytes | None = None) -> None:
        self.language = language
        self.stdout = language.self_test.expected_stdout.encode() if stdout is None else stdout
        self.specs: list[BoxSpec] = []
        self.compile: BoxResult | None = None  # what a compile box returns, when set

    def run(self, spec: BoxSpec, stdio: Stdio | None = None) -> BoxResult:
        self.specs.append(spec)
        if spec.collect:
            if self.compile is not None:
                return self.compile
            files = {f"/box/{f.path}": f.content for f in spec.files}
            files.update({f"/box/{e}": b"\x7fELF" for e in self.language.executables})
            return BoxResult(Status.OK, 0, None, 0.5, 0.6, 64 << 20, b"", b"", "", files=files)
        return BoxResult(Status.OK, 0, None, 0.01, 0.02, 1 << 20, self.stdout, b"", "")


def launcher(rec: Recorder) -> Launcher:
    return cast("Launcher", rec)


def as_submission(lang: Language) -> Submission:
    """The self-test program as a client would send it: Judge0's defaults for everything."""
    test = lang.self_test
    return Submission(
        source_code=test.source,
        language_id=lang.id,
        stdin=test.stdin,
        expected_output=test.expected_stdout,
        additional_files=zipped(test.files) if test.files else "",  # language 89's zip
    )


@pytest.mark.parametrize("lang", CASES)
@pytest.mark.parametrize(("rootfs", "tier"), [("host", "container"), ("image", "gvisor")])
def test_self_test_boxes_are_the_judges_boxes(lang: Language, rootfs: str, tier: str) -> None:
    mine = Recorder(lang)
    enabled, why = self_test(lang, launcher(mine), rootfs, tier)
    assert enabled, why
    judged = Recorder(lang)
    judge = Judge(launcher(judged), dict(LANGUAGES), rootfs=rootfs, min_tier=tier)
    assert judge.judge(as_submission(lang)).verdict.value == "AC"
    assert mine.specs == judged.specs
    assert len(mine.specs) == (2 if lang.compile else 1)
    for spec in mine.specs:
        assert validate(spec) == [], lang.key


def test_self_test_all_runs_each_language_as_the_worker_judges_it() -> None:
    """The worker's minimum tier reaches the self-tests as it reaches its Judge."""
    langs = {i: LANGUAGES[i] for i in (50, 71)}
    recs = {i: Recorder(lang) for i, lang in langs.items()}

    class ByLanguage:
        def run(self, spec: BoxSpec, stdio: Stdio | None = None) -> BoxResult:
            c_box = spec.collect or any(f.path == "main.c" for f in spec.files)
            return recs[50 if c_box else 71].run(spec, stdio)

    seen: list[tuple[str, bool]] = []
    outcome = self_test_all(
        cast("Launcher", ByLanguage()),
        "host",
        langs,
        workers=1,
        min_tier="gvisor",
        on_result=lambda lang, ok, _: seen.append((lang.key, ok)),
    )
    assert {i: ok for i, (ok, _) in outcome.items()} == {50: True, 71: True}
    assert sorted(seen) == [("c", True), ("python3", True)]
    for i, rec in recs.items():
        judged = Recorder(langs[i])
        Judge(launcher(judged), langs, rootfs="host", min_tier="gvisor").judge(
            as_submission(langs[i])
        )
        assert rec.specs == judged.specs
        assert {s.tier for s in rec.specs} == {"gvisor"}


def test_wrong_output_disables_with_what_it_printed() -> None:
    python = LANGUAGES[71]
    enabled, why = self_test(python, launcher(Recorder(python, stdout=b"nope\n")))
    assert not enabled
    assert why.startswith("WA: "), why
    assert "'nope\\n'" in why and repr(python.self_test.expected_stdout) in why


def test_compile_error_disables_with_the_compiler_output() -> None:
    c = LANGUAGES[50]
    rec = Recorder(c)
    error = b"main.c:1:10: error: expected declaration specifiers\n" + b"x" * 5000
    rec.compile = BoxResult(Status.RE, 1, None, 0.1, 0.2, 1 << 20, b"", error, "exit 1")
    enabled, why = self_test(c, launcher(rec))
    assert not enabled
    assert why.startswith("CE: 'main.c:1:10: error: expected declaration"), why
    assert len(why) < 600  # trimmed
    assert len(rec.specs) == 1  # nothing ran


def test_runtime_error_disables_with_its_stderr() -> None:
    python = LANGUAGES[71]

    class Crashing(Recorder):
        def run(self, spec: BoxSpec, stdio: Stdio | None = None) -> BoxResult:
            self.specs.append(spec)
            return BoxResult(Status.RE, 1, None, 0.1, 0.2, 1 << 20, b"", b"Traceback: boom\n", "")

    enabled, why = self_test(python, launcher(Crashing(python)))
    assert not enabled
    assert why.startswith("RE: "), why
    assert "exit 1" in why and "boom" in why


def test_a_box_that_cannot_start_disables() -> None:
    c = LANGUAGES[50]
    rec = Recorder(c)
    rec.compile = BoxResult(Status.XX, None, None, 0, 0, 0, b"", b"", "no image 'nope'")
    enabled, why = self_test(c, launcher(rec), "nope")
    assert not enabled
    assert why.startswith("IE: ") and "no image 'nope'" in why, why

    class Raising:
        def run(self, spec: BoxSpec, stdio: Stdio | None = None) -> BoxResult:
            raise SandboxError("rootfs", "nope", detail="not in the layer store")

    enabled, why = self_test(c, cast("Launcher", Raising()), "nope")
    assert (enabled, why) == (False, "sandbox: rootfs: nope: not in the layer store")


def test_the_self_test_program_is_the_one_judged() -> None:
    """A changed self-test reaches the boxes: the language passed in is the one judged."""
    python = LANGUAGES[71]
    changed = dataclasses.replace(
        python, self_test=dataclasses.replace(python.self_test, source="print(7)", stdin="x\n")
    )
    rec = Recorder(changed)
    assert self_test(changed, launcher(rec))[0]
    (spec,) = rec.specs
    assert spec.stdin == b"x\n"
    assert [f.content for f in spec.files] == [b"print(7)"]
