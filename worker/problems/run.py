"""Judging one program against a package: each case in a fresh box, the output validator's
protocol (or the interactive one), per-group verdicts and scores as testdata.yaml says."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import MIB, BoxSpec, FileIn
from worker.checkers import DATA_DIR, FEEDBACK_DIR, ICPC_AC, ICPC_WA
from worker.interaction import run_joined
from worker.jobs.languages import Language
from worker.jobs.model import CaseResult, GroupResult, JudgeResult, Verdict
from worker.jobs.packages.format import Case, Group, TestData, read_bytes
from worker.jobs.packages.package import Package
from worker.judge import BuildError, Compiled
from worker.problems.programs import (
    Builder,
    Sources,
    choose_language,
    plan,
    read_sources,
    script_plan,
)
from worker.problems.validate import Feedback, default_validate, parse_flags, read_feedback

_KEEP = 64 << 10
# Marks a TLE that finished within the safety margin (over the limit, under the kill).
_MARGIN_NOTE = " (within the safety margin)"
# Worst first, for grader_flags worst_error.
_SEVERITY = [Verdict.IE, Verdict.CE, Verdict.TLE, Verdict.MLE, Verdict.RE, Verdict.OLE, Verdict.WA]


@dataclass(frozen=True)
class Limits:
    """The contestants' time limit, the CPU time a run box is killed at (the limit times the
    safety margin, so that a time_limit_exceeded submission shows it is safely too slow)."""

    time_limit_s: float
    kill_s: float


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    message: str = ""
    score: float | None = None


@dataclass
class PackageJudge:
    """One package's validator built once; judge() is safe to call from several threads."""

    launcher: Launcher
    package: Package
    builder: Builder
    languages: dict[int, Language]
    _validator: Compiled | None = None
    _validator_error: str = ""
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def sources(self, path: Path, choice: str = "") -> Sources:
        files = read_sources(path)
        lang, note = choose_language(
            self.languages, [n for n, _ in files], choice, self.package.meta.languages
        )
        return Sources(files, lang, note)

    def helper(self, path: Path) -> Compiled:
        """A validator or interactor of the package: one file or a directory, in any language
        or with build/run scripts; limited by the package's validation limits."""
        files = dict(read_sources(path))
        if "build" in files or "run" in files:
            base = next(lang for lang in self.languages.values() if lang.key in ("cpp", "c"))
            variant, main, extra = script_plan(base, files)
        else:
            lang, _ = choose_language(self.languages, list(files))
            variant, main, extra = plan(Sources(tuple(files.items()), lang))
        built = self.builder.build(variant, main, extra)
        lim = self.package.limits
        box = replace(
            built.limits,
            cpu_time_s=lim.validation_time_s,
            wall_time_s=2 * lim.validation_time_s + 1,
            memory_bytes=lim.validation_memory_mib * MIB,
            output_bytes=lim.validation_output_mib * MIB,
        )
        return replace(built, limits=box)

    def validator(self) -> Compiled | None:
        if self.package.output_validator is None:
            return None
        with self._guard:
            if self._validator is None and not self._validator_error:
                try:
                    self._validator = self.helper(self.package.output_validator)
                except BuildError as e:
                    self._validator_error = f"output validator does not build: {e.output}"
            if self._validator_error:
                raise BuildError(Verdict.IE, self._validator_error)
            return self._validator

    def judge(self, sources: Sources, limits: Limits) -> JudgeResult:
        try:
            variant, main, extra = plan(sources)
            program = self.builder.build(variant, main, extra)
            validator = self.validator()
        except BuildError as e:
            return JudgeResult.failed(e.verdict, e.output)
        lim = self.package.limits
        box = replace(
            program.limits,
            cpu_time_s=limits.kill_s,
            wall_time_s=2 * limits.kill_s + 1,
            memory_bytes=lim.memory_mib * MIB,
            output_bytes=lim.output_mib * MIB,
            fsize_bytes=max(program.limits.fsize_bytes, lim.output_mib * MIB),
        )
        run = _Run(self, replace(program, limits=box), validator, limits.time_limit_s)
        verdict, score, _ = run.group(self.package.tests)
        top = self.package.tests
        max_score = _max_score(top)
        first = next((c for c in run.results if c.verdict is not Verdict.AC), None)
        message = f"{first.name}: {first.verdict.value} {first.message}".strip() if first else ""
        if not self.package.meta.scoring:
            score = float(sum(1 for c in run.results if c.verdict is Verdict.AC))
            max_score = float(len(top.cases()))
        groups = tuple(g for g in run.groups if g is not None)
        return JudgeResult(
            verdict, score, max_score, tuple(run.results), message=message, groups=groups
        )


@dataclass
class _Run:
    owner: PackageJudge
    program: Compiled
    validator: Compiled | None
    time_limit_s: float
    results: list[CaseResult] = field(default_factory=list)
    # Every group below data/ that ran, outermost first (a slot is kept while it runs).
    groups: list[GroupResult | None] = field(default_factory=list)

    def group(self, group: Group) -> tuple[Verdict, float, bool]:
        """The group's verdict and score; True when it ran every case."""
        slot = len(self.groups)
        if group is not self.owner.package.tests:
            self.groups.append(None)
        td = group.testdata
        verdicts: list[Verdict] = []
        scores: list[float] = []
        complete = True
        for item in group.items:
            if isinstance(item, Group):
                verdict, score, done = self.group(item)
                complete = complete and done
            else:
                verdict, score = self.case(item)
            verdicts.append(verdict)
            scores.append(score)
            if verdict is not Verdict.AC and td.on_reject == "break":
                complete = False
                break
        low, high = td.score_range  # the range of the group's score (testdata.yaml)
        score = min(max(_aggregate(td, group, scores), low), high)
        verdict = _verdict(td, verdicts)
        if group is not self.owner.package.tests:
            self.groups[slot] = GroupResult(group.name, verdict, score, _max_score(group))
        return verdict, score, complete

    def case(self, case: Case) -> tuple[Verdict, float]:
        inp, ans = read_bytes(case.input), read_bytes(case.answer)
        if self.owner.package.meta.interactive:
            r, out = self.interact(case, inp, ans)
        else:
            r, out = self.batch(case, inp, ans)
        td = case.testdata
        score = td.reject_score
        if out.verdict is Verdict.AC:
            score = td.accept_score if out.score is None else out.score
        if case.name.startswith("sample/"):
            score = 0.0
        self.results.append(_case(case.name, out, r, score))
        return out.verdict, score

    def batch(self, case: Case, inp: bytes, ans: bytes) -> tuple[BoxResult, Outcome]:
        r = self.owner.launcher.run(self.program.box_spec((), (), inp))
        verdict, message = program_verdict(r, self.time_limit_s)
        if verdict is not Verdict.AC:
            return r, Outcome(verdict, message)
        flags = (*self.owner.package.meta.validator_flags, *case.testdata.output_validator_flags)
        if self.validator is None:
            ok, why = default_validate(parse_flags(flags), r.stdout, ans)
            return r, Outcome(Verdict.AC if ok else Verdict.WA, why)
        spec = _with_feedback(self.validator.box_spec(_args(flags), _files(inp, ans), r.stdout))
        return r, validator_outcome(self.owner.launcher.run(spec))

    def interact(self, case: Case, inp: bytes, ans: bytes) -> tuple[BoxResult | None, Outcome]:
        """The validator's stdin and stdout joined to the program's stdout and stdin. Who
        ended first decides between the two: a validator that rejected before the program
        ran out of time (or crashed) gives WA, as problemtools and DOMjudge both rule."""
        assert self.validator is not None
        flags = (*self.owner.package.meta.validator_flags, *case.testdata.output_validator_flags)
        joined = run_joined(
            self.owner.launcher,
            self.program.box_spec((), (), b""),
            _with_feedback(self.validator.box_spec(_args(flags), _files(inp, ans), b"")),
        )
        if joined is None:
            return None, Outcome(Verdict.IE, "a box of the interaction failed to run")
        p, v, validator_first = joined
        return p, interactive_outcome(p, v, validator_first, self.time_limit_s)


def interactive_outcome(
    p: BoxResult, v: BoxResult, validator_first: bool, time_limit_s: float
) -> Outcome:
    """The rule of the two contest systems: a rejecting validator that ended first wins over
    whatever the program did after; otherwise the program's own failure, then the
    validator's answer."""
    judged = validator_outcome(v)
    verdict, message = program_verdict(p, time_limit_s)
    if judged.verdict is Verdict.WA and (validator_first or verdict is Verdict.AC):
        return judged
    if verdict is not Verdict.AC and not validator_first:
        # The program failed first: what the validator did after (EOF, SIGPIPE) follows.
        return Outcome(verdict, message)
    if judged.verdict is Verdict.IE or verdict is Verdict.AC:
        return judged
    return Outcome(verdict, message)


def program_verdict(r: BoxResult, time_limit_s: float) -> tuple[Verdict, str]:
    table = {Status.XX: Verdict.IE, Status.TO: Verdict.TLE, Status.MLE: Verdict.MLE}
    if r.status in table:
        return table[r.status], r.message
    if r.status is Status.OLE:
        return Verdict.OLE, r.message
    if r.status in (Status.SG, Status.RE):
        return Verdict.RE, r.message
    if r.time > time_limit_s:
        return Verdict.TLE, f"{r.time:.3f} s of CPU, over {time_limit_s:g} s{_MARGIN_NOTE}"
    return Verdict.AC, ""


def within_margin(message: str) -> bool:
    """Did this TLE end by itself, over the limit but before the box's kill?"""
    return message.endswith(_MARGIN_NOTE)


def validator_outcome(r: BoxResult) -> Outcome:
    """Exit 42 accepts, 43 rejects; anything else is the validator's failure (IE). The
    judge message and score come from its feedback directory."""
    fb = read_feedback(r.files) if r.files else Feedback()
    text = fb.judge_message or r.stderr[:1000].decode("utf-8", "replace").strip()
    code = r.exit_code if r.status in (Status.OK, Status.RE) else None
    if fb.error:
        return Outcome(Verdict.IE, f"validator: {fb.error}")
    if code == ICPC_AC:
        return Outcome(Verdict.AC, text, fb.score)
    if code == ICPC_WA:
        return Outcome(Verdict.WA, text)
    why = f"validator failed: {r.status.value} exit {r.exit_code} ({r.message})"
    return Outcome(Verdict.IE, f"{why}: {text}" if text else why)


def _verdict(td: TestData, verdicts: list[Verdict]) -> Verdict:
    bad = [v for v in verdicts if v is not Verdict.AC]
    if not bad:
        return Verdict.AC
    if td.verdict_rule() == "worst_error":
        return min(bad, key=_SEVERITY.index)
    return bad[0]


def _aggregate(td: TestData, group: Group, scores: list[float]) -> float:
    if not scores:
        return 0.0
    rule = td.aggregation()
    if rule == "min":
        return min(scores)
    if rule == "max":
        return max(scores)
    if rule == "avg":
        return sum(scores) / len(group.items)
    return sum(scores)


def _max_score(group: Group) -> float:
    """The best score: the group's range where it has an upper end, else its cases' accept
    scores aggregated (a validator's score.txt may go beyond them; the range says how far)."""
    high = group.testdata.score_range[1]
    if high != math.inf:
        return high
    scores = [_max_score(i) if isinstance(i, Group) else _case_max(i) for i in group.items]
    return _aggregate(group.testdata, group, scores)


def _case_max(case: Case) -> float:
    return 0.0 if case.name.startswith("sample/") else case.testdata.accept_score


def _args(flags: tuple[str, ...]) -> tuple[str, ...]:
    return (f"{DATA_DIR}/input", f"{DATA_DIR}/answer", FEEDBACK_DIR, *flags)


def _files(inp: bytes, ans: bytes) -> tuple[FileIn, ...]:
    return (
        FileIn(f"{DATA_DIR}/input", inp),
        FileIn(f"{DATA_DIR}/answer", ans),
        FileIn(f"{FEEDBACK_DIR}.keep", b""),
    )


def _with_feedback(spec: BoxSpec) -> BoxSpec:
    return replace(spec, collect=(f"/box/{FEEDBACK_DIR}",), collect_max_bytes=1 << 20)


def _case(name: str, out: Outcome, r: BoxResult | None, score: float) -> CaseResult:
    if r is None:
        return CaseResult(name, out.verdict, 0.0, 0, points=score, message=out.message)
    return CaseResult(
        name=name,
        verdict=out.verdict,
        time=round(r.time, 4),
        memory=r.memory,
        points=score,
        message=out.message,
        exit_code=r.exit_code,
        signal=r.signal,
        stdout=r.stdout[:_KEEP].decode("utf-8", "replace"),
        stderr=r.stderr[:_KEEP].decode("utf-8", "replace"),
    )
