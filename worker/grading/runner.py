"""The native grader: every test of an assignment in fresh boxes, scored from what the host saw."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec, FileIn
from worker import checkers
from worker.grading import harness
from worker.grading.assignment import Assignment, Test
from worker.grading.results import Results, ScoredTest
from worker.jobs.languages import Language, load_languages, rootfs_for
from worker.jobs.model import CheckerSpec, Verdict
from worker.judge import BuildError, Compiled, Judge

_PY_ENV = (("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONPATH", harness.DIR))
_STATUS_WORDS = {
    Status.TO: "time limit exceeded",
    Status.MLE: "memory limit exceeded",
    Status.OLE: "output limit exceeded",
    Status.SG: "killed by a signal",
    Status.RE: "runtime error",
}


class GradingError(Exception):
    """The assignment cannot be graded here at all (not a submission's fault)."""


class BoxFailed(Exception):
    """A box of the grader failed (XX): the submission could not be graded."""


@dataclass
class Grader:
    """Long-lived beside a Launcher: one grade() per submission, safe from many threads."""

    launcher: Launcher
    languages: dict[int, Language] = field(default_factory=dict)
    rootfs: str = "host"

    def __post_init__(self) -> None:
        if not self.languages:
            self.languages = load_languages()

    def language(self, assignment: Assignment) -> Language | None:
        """The assignment's language; GradingError when this worker has none of that key."""
        if not assignment.language:
            return None
        for lang in self.languages.values():
            if lang.key == assignment.language:
                return lang
        raise GradingError(f"language: no language {assignment.language!r} on this worker")

    def check(self, assignment: Assignment) -> None:
        """Refuse, before any submission, what this grader cannot run."""
        lang = self.language(assignment)
        if not assignment.setup.empty:
            raise GradingError(
                "setup: building an image from [setup] is not supported yet; "
                "name a prepared image in `image` instead"
            )
        needs_lang = [t.name for t in assignment.tests if t.kind == "io"]
        if needs_lang and lang is None:
            raise GradingError(f"language: io test {needs_lang[0]!r} needs a language")
        unsupported = [t for t in assignment.tests if t.kind in ("junit", "go")]
        if unsupported:
            t = unsupported[0]
            raise GradingError(f"tests: kind {t.kind!r} ({t.name}) is not supported yet")

    def grade(self, assignment: Assignment, submission: dict[str, bytes]) -> Results:
        started = time.monotonic()
        try:
            run = _Run(self, assignment, submission)
            tests = tuple(run.test(t) for t in assignment.tests)
        except BoxFailed as e:
            return Results(error=str(e), output=f"could not be graded: {e}")
        return Results(
            tests=tests,
            output=run.notes(),
            visibility=assignment.visibility,
            execution_time=time.monotonic() - started,
        )


class _Run:
    """One submission against one assignment: the build is shared, every box is fresh."""

    def __init__(self, grader: Grader, assignment: Assignment, files: dict[str, bytes]) -> None:
        self.launcher = grader.launcher
        self.assignment = assignment
        self.lang = grader.language(assignment)
        if assignment.image:
            self.rootfs = assignment.image
        elif self.lang is not None:
            self.rootfs = rootfs_for(self.lang, grader.rootfs)
        else:
            self.rootfs = grader.rootfs
        self.judge = Judge(grader.launcher, grader.languages, self.rootfs)
        self.refused = sorted(p for p in files if p.rsplit("/", 1)[-1] in harness.REFUSED_NAMES)
        self.shadowed = sorted(p for p in files if p in assignment.files)
        self.student = {p: c for p, c in files.items() if p not in self.refused}
        self._built: Compiled | BuildError | None = None
        # The files of tests students may not see yet never reach a visible test's box,
        # where the student's code could print them into feedback the student reads.
        self.private = {
            f for t in assignment.tests if t.visibility != "visible" for f in t.own_files
        }

    def notes(self) -> str:
        lines = []
        if self.refused:
            lines.append(f"left out of every test box: {', '.join(self.refused)}")
        if self.shadowed:
            lines.append(f"replaced by the instructor's copy: {', '.join(self.shadowed)}")
        return "\n".join(lines)

    def test(self, test: Test) -> ScoredTest:
        if test.kind == "io":
            score, output = self._io(test)
        else:
            score, output = self._single(test)
        return ScoredTest(test.number, test.name, score, test.points, test.visibility, output)

    # --- Building -------------------------------------------------------------------------

    def _build(self) -> Compiled | BuildError:
        """The student's program, compiled once (a compile box) for every io case."""
        if self._built is None:
            lang = self.lang
            assert lang is not None
            source = self.student.get(lang.source_file)
            if source is None:
                return BuildError(Verdict.CE, f"the submission has no {lang.source_file}")
            extra = {p: c for p, c in self.student.items() if p != lang.source_file}
            built: Compiled | BuildError
            try:
                built = self.judge.build(lang.id, source.decode("utf-8", "replace"), extra)
            except BuildError as e:
                if "compile box failed" in e.output:
                    raise BoxFailed(e.output) from None
                built = e
            self._built = built
        return self._built

    # --- io tests -------------------------------------------------------------------------

    def _io(self, test: Test) -> tuple[float, str]:
        built = self._build()
        if isinstance(built, BuildError):
            return 0.0, f"not built: {built.output}".strip()
        program = replace(built, limits=test.limits)
        checker = CheckerSpec(test.checker, test.abs_tolerance, test.rel_tolerance)
        total = sum(c.weight for c in test.cases)
        earned, lines = 0.0, []
        for i, case in enumerate(test.cases, 1):
            r = self._run(program.box_spec((), (), case.stdin))
            if r.status is Status.OK:
                out = checkers.compare(checker, r.stdout, case.expected)
                ok, why = out.accepted, "" if out.accepted else f"wrong answer: {out.message}"
            else:
                ok, why = False, _status_text(r)
            earned += case.weight if ok else 0.0
            lines.append(f"case {i}: {'passed' if ok else why}")
        return test.points * earned / total, "\n".join(lines)

    # --- Runner tests (pytest, unittest, command) -------------------------------------------

    def _single(self, test: Test) -> tuple[float, str]:
        extra: tuple[FileIn, ...] = ()
        key = ""
        if test.kind == "command":
            argv = test.command
        elif test.kind == "pytest":
            h = harness.pytest_harness(test.target)
            argv, extra, key = h.argv, h.files, h.key
        else:
            h = harness.unittest_harness(test.target)
            argv, extra, key = h.argv, h.files, h.key
        files = (*self._box_files(test), *extra)
        env = (*(self.lang.env if self.lang else ()), *_PY_ENV)
        spec = BoxSpec(
            argv=argv,
            files=files,
            env=env,
            limits=test.limits,
            rootfs=self.rootfs,
            profile=self.lang.run_profile if self.lang else "run",
        )
        r = self._run(spec)
        text = _output(r)
        if test.kind == "command":
            passed = r.status is Status.OK
            why = "" if passed else _status_text(r)
        else:
            if r.status not in (Status.OK, Status.RE):
                return 0.0, _join(_status_text(r), text)
            v = harness.judge_report(
                r.stdout, r.exit_code, key, test.target, test.kind == "unittest"
            )
            passed, why, text = (
                v.passed,
                v.reason,
                _join(v.output, r.stderr.decode("utf-8", "replace")),
            )
        return (test.points if passed else 0.0), _join(why, text)

    def _box_files(self, test: Test) -> list[FileIn]:
        """The student's files, then the instructor's over them (the instructor's copy wins a
        clash, so a submission cannot replace a test); a compiled
        language's command tests get the built program too."""
        files = dict(self.student)
        if test.kind == "command" and self.lang is not None and self.lang.compile:
            built = self._build()
            if isinstance(built, Compiled):
                files.update({f.path: f.content for f in built.files})
        private = self.private - set(test.own_files) if test.visibility == "visible" else set()
        files.update((p, c) for p, c in self.assignment.files.items() if p not in private)
        return [FileIn(p, c, 0o755) for p, c in sorted(files.items())]

    def _run(self, spec: BoxSpec) -> BoxResult:
        r = self.launcher.run(spec)
        if r.status is Status.XX:
            raise BoxFailed(f"a test box failed: {r.message}")
        return r


def _status_text(r: BoxResult) -> str:
    word = _STATUS_WORDS.get(r.status, r.status.value)
    return f"{word} ({r.message})"


def _output(r: BoxResult) -> str:
    return _join(r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace"))


def _join(*parts: str) -> str:
    return "\n".join(p.strip("\n") for p in parts if p.strip())
