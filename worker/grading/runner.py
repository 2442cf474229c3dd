"""The native grader: every test of an assignment in fresh boxes, scored from what the host saw."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from sandbox.images.build import Progress, stderr_progress
from sandbox.images.setupbox import SetupJob
from sandbox.images.store import LayerStore
from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec, FileIn
from worker import checkers
from worker.grading import gotest, harness, junit
from worker.grading.assignment import Assignment, Setup, Test
from worker.grading.results import Results, ScoredTest
from worker.grading.setup import SetupError, build_setup
from worker.jobs.languages import Language, load_languages, rootfs_for
from worker.jobs.model import CheckerSpec, Verdict
from worker.judge import BuildError, Compiled, Judge

_PY_ENV = (
    ("PYTHONDONTWRITEBYTECODE", "1"),
    ("PYTHONPATH", harness.DIR),
    ("PYTHONNOUSERSITE", "1"),
)
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
    setup_wall_s: float = SetupJob.wall_time_s  # a [setup] box's wall-time limit

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
        needs_lang = [t for t in assignment.tests if t.kind in ("io", "junit", "go")]
        if needs_lang and lang is None:
            t = needs_lang[0]
            raise GradingError(f"language: {t.kind} test {t.name!r} needs a language")

    def prepare(self, assignment: Assignment, progress: Progress = stderr_progress) -> Assignment:
        """check(), then the image of its [setup] built (once: the store finds it again by
        its content); the assignment returned runs on that image."""
        self.check(assignment)
        store = LayerStore(self.launcher.config.state_dir)
        try:
            lang = self.language(assignment)
            config = self.launcher.config
            image = build_setup(store, config, assignment, lang, progress, self.setup_wall_s)
        except SetupError as e:
            raise GradingError(str(e)) from None
        if image is None:
            return assignment
        return replace(assignment, image=image, setup=Setup())

    def grade(self, assignment: Assignment, submission: dict[str, bytes]) -> Results:
        if not assignment.setup.empty:  # never graded without what its tests need
            raise GradingError("setup: not built yet (Grader.prepare builds it)")
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
        self.refused = sorted(
            p
            for p in files
            if p.rsplit("/", 1)[-1] in harness.REFUSED_NAMES or p.startswith(harness.REFUSED_DIRS)
        )
        self.shadowed = sorted(p for p in files if p in assignment.files)
        self.student = {p: c for p, c in files.items() if p not in self.refused}
        self._built: Compiled | BuildError | None = None
        self._classes: dict[str, bytes] | str | None = None
        self._gobin: tuple[FileIn, gotest.Reporter] | str | None = None
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
            name = self.assignment.program or lang.source_file
            source = self.student.get(name)
            if source is None:
                return BuildError(Verdict.CE, f"the submission has no {name}")
            # Built as the language's source file (script.py, main.c): its compile and run
            # commands name that file.
            extra = {p: c for p, c in self.student.items() if p not in (name, lang.source_file)}
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

    # --- Runner tests (pytest, unittest, junit, command) -------------------------------------

    def _single(self, test: Test) -> tuple[float, str]:
        extra: tuple[FileIn, ...] = ()
        key, limits, stdin = "", test.limits, ""
        if test.kind == "command":
            argv = test.command
        elif test.kind == "junit":
            assert self.lang is not None
            classes = self._junit_classes(test)
            if isinstance(classes, str):
                return 0.0, f"not built: {classes}"
            # The JVM's own threads count against pids: never fewer than the language's.
            limits = replace(limits, pids=max(limits.pids, self.lang.limits.pids))
            h = junit.run_harness(self.lang, test.target, limits)
            argv, extra, key = h.argv, (*classes, *h.files), h.key
        elif test.kind == "go":
            built = self._go_binary()
            if isinstance(built, str):
                return 0.0, f"not built: {built}"
            binary, rep = built
            limits = gotest.limits_for(self._lang(), limits)
            sent = gotest.challenge()
            argv, extra, stdin = gotest.run_argv(test.target, rep.name), (binary,), sent
        else:
            make = harness.pytest_harness if test.kind == "pytest" else harness.unittest_harness
            h = make(test.target)
            argv, extra, key = h.argv, h.files, h.key
        env = (*(self.lang.env if self.lang else ()), *_PY_ENV)
        spec = BoxSpec(
            argv=argv,
            files=(*self._box_files(test), *extra),
            stdin=f"{stdin}\n".encode() if stdin else b"",
            env=env,
            limits=limits,
            rootfs=self.rootfs,
            profile=self.lang.run_profile if self.lang else "run",
            # The language's own minimum tier holds for its tests as for its judged programs.
            tier=self.lang.tier if self.lang else "container",
        )
        r = self._run(spec)
        if test.kind == "go":
            ok, why, text = gotest.judge(r, test.target, rep, sent)
            return (test.points if ok else 0.0), _join(
                why, text, r.stderr.decode("utf-8", "replace")
            )
        if test.kind == "command":
            passed = r.status is Status.OK
            return (test.points if passed else 0.0), _join(
                "" if passed else _status_text(r), _output(r)
            )
        if r.status not in (Status.OK, Status.RE):
            return 0.0, _join(_status_text(r), _output(r))
        v = harness.judge_report(r.stdout, r.exit_code, key, test.target, test.kind)
        text = _join(v.reason, v.output, r.stderr.decode("utf-8", "replace"))
        return (test.points if v.passed else 0.0), text

    def _go_binary(self) -> tuple[FileIn, gotest.Reporter] | str:
        """The package's test binary with the grader's reporter, or why there is none."""
        if self._gobin is None:
            sources = {**self.student, **self.assignment.files}
            rep = gotest.reporter(sources)
            if isinstance(rep, str):
                self._gobin = rep
                return rep
            r = self._run(gotest.compile_spec(self._lang(), sources, rep.file, self.rootfs))
            binary = r.files.get(f"/box/{gotest.BINARY}")
            if r.status is not Status.OK or binary is None:
                self._gobin = _output(r) or _status_text(r)
            else:
                self._gobin = (FileIn(gotest.BINARY, binary, 0o755), rep)
        return self._gobin

    def _junit_classes(self, test: Test) -> tuple[FileIn, ...] | str:
        """The compiled classes this test's box may hold, or the compiler's complaint."""
        if self._classes is None:
            sources = {**self.student, **self.assignment.files}
            r = self._run(junit.compile_spec(self._lang(), sources, self.rootfs))
            if r.status is not Status.OK:
                self._classes = _output(r) or _status_text(r)
            else:
                self._classes = {p.removeprefix("/box/"): c for p, c in r.files.items()}
        if isinstance(self._classes, str):
            return self._classes
        hidden: set[str] = set()
        if test.visibility == "visible":
            private = {f for f in self.private - set(test.own_files) if f.endswith(".java")}
            hidden = junit.private_classes(private, self._classes)
        return tuple(FileIn(p, c) for p, c in sorted(self._classes.items()) if p not in hidden)

    def _lang(self) -> Language:
        assert self.lang is not None  # check() refuses a junit test without a language
        return self.lang

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
        if test.kind == "go":  # compiled into the binary: the sources (hidden tests') stay out
            files = {p: c for p, c in files.items() if not p.endswith((".go", "go.mod", "go.sum"))}
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
