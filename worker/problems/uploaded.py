"""Native submissions against an uploaded package: fetched from Redis by its digest, unpacked
once per host into a cache, judged by PackageJudge with the package's own limits."""

from __future__ import annotations

import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

from sandbox.launcher import Launcher
from sandbox.spec import strongest
from worker.jobs.archives import ArchiveError
from worker.jobs.languages import Language
from worker.jobs.model import JudgeResult, Submission, Verdict
from worker.jobs.packages.format import ProblemError
from worker.jobs.packages.package import load_package
from worker.jobs.problems import ProblemStore, unpacked
from worker.jobs.settings import KEPT_OUTPUT_PER_CASE, KEPT_OUTPUT_TOTAL
from worker.problems.programs import Builder, Sources
from worker.problems.run import Limits, PackageJudge
from worker.trim import kept_output

_KEEP_JUDGES = 8  # packages whose validator stays built in one worker process


def default_cache() -> Path:
    return Path(tempfile.gettempdir()) / "stockade-problems"


@dataclass
class UploadedProblems:
    """One worker process's judge of `problem` submissions."""

    launcher: Launcher
    languages: dict[int, Language]
    problems: ProblemStore
    cache: Path
    max_package_bytes: int
    max_memory_mib: int
    max_runs: int
    rootfs: str = "host"
    min_tier: str = ""
    # The operator's STOCKADE_KEPT_OUTPUT_*, as the Judge holds a submission with cases to.
    kept_output_per_case: int = KEPT_OUTPUT_PER_CASE.as_int({})
    kept_output_total: int = KEPT_OUTPUT_TOTAL.as_int({})
    _judges: OrderedDict[tuple[str, str], PackageJudge] = field(default_factory=OrderedDict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def judge_timed(self, sub: Submission) -> tuple[JudgeResult, dict[str, float]]:
        start = time.monotonic()
        result = self.judge(sub)
        # Building and running are not told apart here: one PackageJudge does both.
        return result, {"run_s": time.monotonic() - start}

    def judge(self, sub: Submission) -> JudgeResult:
        lang = self.languages.get(sub.language_id)
        if lang is None:
            why = f"language_id: {sub.language_id} is not served by this worker"
            return JudgeResult.failed(Verdict.IE, why)
        try:
            pj = self._package_judge(sub.problem, strongest(sub.tier, self.min_tier))
        except (ProblemError, ArchiveError, OSError) as e:
            return JudgeResult.failed(Verdict.IE, f"problem: {e}")
        cases = len(pj.package.cases)
        if cases > self.max_runs:
            why = (
                f"problem: {cases} cases; this worker runs at most {self.max_runs} "
                "(STOCKADE_MAX_RUNS_PER_SUBMISSION)"
            )
            return JudgeResult.failed(Verdict.IE, why)
        tl = pj.package.limits.time_limit_s
        if tl is None:  # the API refuses such uploads; a package from elsewhere may lack it
            return JudgeResult.failed(Verdict.IE, "problem: the package states no time limit")
        # The exact bytes: a binary source (language 44) is kept as base64 (source_base64).
        sources = Sources(((lang.source_file, sub.source_bytes()),), lang)
        try:
            result = pj.judge(sources, Limits(tl, pj.package.limits.tle_threshold(tl)))
        except ProblemError as e:
            return JudgeResult.failed(Verdict.IE, f"problem: {e}")
        return self._kept(result)

    def _kept(self, result: JudgeResult) -> JudgeResult:
        """Each case's output cut to what the operator keeps, case by case, as the Judge does."""
        room, cases = self.kept_output_total, []
        for c in result.cases:
            out, err, cut = kept_output(c.stdout, c.stderr, min(self.kept_output_per_case, room))
            room -= len(out.encode()) + len(err.encode())
            cases.append(replace(c, stdout=out, stderr=err, truncated=c.truncated or cut))
        return replace(result, cases=tuple(cases))

    def _package_judge(self, problem: str, tier: str) -> PackageJudge:
        key = (problem, tier)
        with self._guard:
            if key in self._judges:
                self._judges.move_to_end(key)
                return self._judges[key]
        data = self.problems.zip(problem)
        if data is None:
            raise ProblemError(
                "the package expired or was never uploaded (STOCKADE_PROBLEM_TTL_S); upload it "
                "again and resubmit"
            )
        directory = unpacked(self.cache, problem, data, self.max_package_bytes)
        package = load_package(directory, self.max_memory_mib)
        lim = package.limits
        builder = Builder(
            self.launcher,
            self.languages,
            self.rootfs,
            lim.compile_time_s,
            lim.compile_memory_mib,
            min_tier=tier,
        )
        pj = PackageJudge(self.launcher, package, builder, self.languages)
        with self._guard:
            self._judges[key] = pj
            while len(self._judges) > _KEEP_JUDGES:
                self._judges.popitem(last=False)
        return pj
