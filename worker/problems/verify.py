"""`stockade problem verify`: every submission of a package judged and held to the verdict its
folder (or its @EXPECTED_RESULTS@ line) names; every input through the input validators."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.launcher import Launcher
from worker.jobs.languages import Language
from worker.jobs.model import JudgeResult, Verdict
from worker.jobs.packages.format import ProblemError, read_bytes
from worker.jobs.packages.package import Package, load_package
from worker.judge import BuildError
from worker.problems.programs import Builder, read_sources
from worker.problems.run import Limits, PackageJudge, within_margin

_ANY_REJECTION = frozenset(Verdict) - {Verdict.AC, Verdict.IE}
# The folders of both versions and of DOMjudge. Kattis's rule: a memory kill counts as a
# run-time error, so run_time_error takes MLE too (the report shows which it was).
FOLDERS: dict[str, frozenset[Verdict]] = {
    "accepted": frozenset({Verdict.AC}),
    "wrong_answer": frozenset({Verdict.WA}),
    "time_limit_exceeded": frozenset({Verdict.TLE}),
    "run_time_error": frozenset({Verdict.RE, Verdict.MLE}),
    "memory_limit_exceeded": frozenset({Verdict.MLE, Verdict.RE}),
    "output_limit_exceeded": frozenset({Verdict.OLE}),
    "compile_error": frozenset({Verdict.CE}),
    "rejected": _ANY_REJECTION,
}
# DOMjudge's @EXPECTED_RESULTS@ words.
ANNOTATION = {
    "CORRECT": {Verdict.AC},
    "WRONG-ANSWER": {Verdict.WA},
    "NO-OUTPUT": {Verdict.WA},
    "TIMELIMIT": {Verdict.TLE},
    "RUN-ERROR": {Verdict.RE, Verdict.MLE},
    "COMPILER-ERROR": {Verdict.CE},
    "OUTPUT-LIMIT": {Verdict.OLE},
}
_EXPECTED = re.compile(rb"@EXPECTED_RESULTS@:\s*([A-Z, -]+)")
PROVISIONAL_S = 10.0  # the accepted submissions' limit while the real one is derived


@dataclass(frozen=True)
class Row:
    submission: str
    expected: tuple[str, ...]
    result: JudgeResult
    ok: bool
    note: str = ""


@dataclass
class Report:
    problem: str
    version: str
    time_limit_s: float
    time_source: str
    rows: list[Row] = field(default_factory=list)
    input_failures: list[str] = field(default_factory=list)
    inputs_checked: int = 0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows) and not self.input_failures


Progress = Callable[[int, int, str], None]


def expected_verdicts(path: Path, folder: str) -> frozenset[Verdict] | None:
    """An @EXPECTED_RESULTS@ line in the source wins over the folder's name; None: neither."""
    for _, data in read_sources(path):
        m = _EXPECTED.search(data)
        if m:
            words = [w.strip() for w in m.group(1).decode().split(",") if w.strip()]
            unknown = [w for w in words if w not in ANNOTATION]
            if unknown:
                raise ProblemError(f"{path}: @EXPECTED_RESULTS@: unknown {unknown}")
            return frozenset(v for w in words for v in ANNOTATION[w])
    return FOLDERS.get(folder)


def verify(
    launcher: Launcher,
    languages: dict[int, Language],
    directory: Path,
    max_memory_mib: int,
    rootfs: str = "host",
    jobs: int = 2,
    progress: Progress | None = None,
) -> Report:
    package = load_package(directory, max_memory_mib)
    lim = package.limits
    builder = Builder(launcher, languages, rootfs, lim.compile_time_s, lim.compile_memory_mib)
    pj = PackageJudge(launcher, package, builder, languages)
    subs = _submissions(directory)
    total = len(subs) + 1
    done = [0]

    def tick(name: str) -> None:
        done[0] += 1
        if progress:
            progress(done[0], total, name)

    report = Report(package.meta.name, package.meta.version, 0.0, lim.time_source)
    report.input_failures, report.inputs_checked = check_inputs(pj, package)
    tick("input validators")
    accepted = [s for s in subs if s[1] == "accepted"]
    rest = [s for s in subs if s[1] != "accepted"]
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        if lim.time_limit_s is None:
            first = Limits(PROVISIONAL_S, PROVISIONAL_S)
            pre = list(pool.map(lambda s: _judge(pj, s, first, tick), accepted))
            times = [r.time for _, r, _ in pre if r.verdict is Verdict.AC]
            if not times:
                raise ProblemError(f"{directory}: no time limit and no accepted submission")
            tl = lim.derive(max(times))
        else:
            tl, pre = lim.time_limit_s, []
            rest = subs
        limits = Limits(tl, lim.tle_threshold(tl))
        report.time_limit_s = tl
        post = list(pool.map(lambda s: _judge(pj, s, limits, tick), rest))
    for (path, folder, expected), result, note in [*pre, *post]:
        report.rows.append(_row(directory, path, folder, expected, result, note, limits))
    report.rows.sort(key=lambda r: r.submission)
    return report


def derive_time_limit(pj: PackageJudge, jobs: int = 2) -> float:
    """The stated limit, or the one the accepted submissions give (stockade judge)."""
    lim = pj.package.limits
    if lim.time_limit_s is not None:
        return lim.time_limit_s
    accepted = [s for s in _submissions(pj.package.directory) if s[1] == "accepted"]
    first = Limits(PROVISIONAL_S, PROVISIONAL_S)
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        pre = list(pool.map(lambda s: _judge(pj, s, first, None), accepted))
    times = [r.time for _, r, _ in pre if r.verdict is Verdict.AC]
    if not times:
        raise ProblemError(
            f"{pj.package.directory}: no time limit stated and no accepted submission to derive it"
        )
    return lim.derive(max(times))


def check_inputs(pj: PackageJudge, package: Package) -> tuple[list[str], int]:
    """Every input through every input validator (stdin: the input; exit 42: valid)."""
    failures: list[str] = []
    checked = 0
    for path in package.input_validators:
        try:
            program = pj.helper(path)
        except BuildError as e:
            failures.append(f"{path.name}: does not build: {e.output[:200]}")
            continue
        for case in package.cases:
            flags = case.testdata.input_flags(path.stem)
            r = pj.launcher.run(program.box_spec(flags, (), read_bytes(case.input)))
            checked += 1
            if r.exit_code != 42:
                why = (r.stderr or r.stdout)[:200].decode("utf-8", "replace").strip()
                failures.append(f"{path.name}: {case.name}: exit {r.exit_code} {why}".strip())
    return failures, checked


_Sub = tuple[Path, str, frozenset[Verdict]]


def _submissions(directory: Path) -> list[_Sub]:
    root = directory / "submissions"
    out: list[_Sub] = []
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                continue
            expected = expected_verdicts(path, folder.name)
            if expected is not None:
                out.append((path, folder.name, expected))
    return out


def _judge(
    pj: PackageJudge, sub: _Sub, limits: Limits, tick: Callable[[str], None] | None
) -> tuple[_Sub, JudgeResult, str]:
    path = sub[0]
    try:
        sources = pj.sources(path)
        result = pj.judge(sources, limits)
        note = sources.note
    except ProblemError as e:
        result, note = JudgeResult.failed(Verdict.IE, str(e)), ""
    if tick:
        tick(f"{path.parent.name}/{path.name}")
    return sub, result, note


def _row(
    directory: Path,
    path: Path,
    folder: str,
    expected: frozenset[Verdict],
    result: JudgeResult,
    note: str,
    limits: Limits,
) -> Row:
    ok = result.verdict in expected
    # Safely too slow: beyond the limit times the safety margin, not merely beyond it.
    safely = any(c.verdict is Verdict.TLE and not within_margin(c.message) for c in result.cases)
    if ok and result.verdict is Verdict.TLE and folder == "time_limit_exceeded" and not safely:
        ok, note = False, f"TLE only within the safety margin ({limits.kill_s:g} s)"
    if ok and result.verdict is Verdict.MLE and Verdict.RE in expected:
        note = "MLE (a run-time error by Kattis's rule)"
    names = tuple(sorted(v.value for v in expected))
    return Row(str(path.relative_to(directory)), names, result, ok, note)
