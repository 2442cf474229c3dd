"""A Judge that also measures its compile and run phases (wall seconds) for the metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sandbox.spec import Limits
from worker.jobs.model import JudgeResult, Submission
from worker.judge import Compiled, Judge


@dataclass
class TimedJudge(Judge):
    """judge_timed() returns the result and {"compile_s", "run_s"}: building is compile,
    the rest (every case, checker and interactor) is run. One job at a time per instance."""

    _build_s: float = 0.0

    def build(
        self,
        language_id: int,
        source: str | bytes,
        extra: dict[str, bytes],
        options: str = "",
        tier: str = "",
        *,
        name: str = "",
        compile_asked: Limits | None = None,
    ) -> Compiled:
        start = time.monotonic()
        try:
            return super().build(
                language_id, source, extra, options, tier, name=name, compile_asked=compile_asked
            )
        finally:
            self._build_s += time.monotonic() - start

    def judge_timed(self, sub: Submission) -> tuple[JudgeResult, dict[str, float]]:
        self._build_s = 0.0
        start = time.monotonic()
        result = self.judge(sub)
        total = time.monotonic() - start
        compile_s = min(self._build_s, total)
        return result, {"compile_s": compile_s, "run_s": total - compile_s}
