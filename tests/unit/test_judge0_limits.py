"""Judge0's limits as the judge applies them: its minima below the box's floors, a zero CPU or
stack limit read as isolate reads it (none), and the mean time and memory of number_of_runs.
A recorder stands in for the launcher: what is tested is the judge's arithmetic and the specs
it asks for (the kernel's side of each limit is tested in tests/privileged)."""

from __future__ import annotations

from typing import cast

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec, validate
from sandbox.stdio import Stdio
from worker.jobs.languages import load_languages
from worker.jobs.model import Submission, Verdict
from worker.jobs.rules import validate as rules
from worker.judge import BOX_MIN_MEMORY, Judge

PYTHON = 71
KIB, MIB = 1024, 1024 * 1024


class Recorder:
    """Answers each box with the next of `results` (the last again when they run out)."""

    def __init__(self, *results: BoxResult) -> None:
        self.results = list(results)
        self.specs: list[BoxSpec] = []

    def run(self, spec: BoxSpec, stdio: Stdio | None = None) -> BoxResult:
        assert validate(spec) == [], validate(spec)  # every spec asked for is one the box takes
        self.specs.append(spec)
        return self.results.pop(0) if len(self.results) > 1 else self.results[0]


def ok(time: float = 0.01, memory: int = MIB) -> BoxResult:
    return BoxResult(Status.OK, 0, None, time, time * 2, memory, b"", b"", "")


def judged(launcher: Recorder, **fields: object) -> tuple[Submission, Verdict, float, int]:
    sub = Submission("print(1)", PYTHON, **fields)  # type: ignore[arg-type]
    assert rules(sub) == [], rules(sub)
    result = Judge(cast(Launcher, launcher), load_languages()).judge(sub)
    case = result.cases[0]
    return sub, case.verdict, case.time, case.memory


def test_number_of_runs_reports_the_mean_time_and_memory() -> None:
    runs = Recorder(ok(0.1, 1 * MIB), ok(0.2, 2 * MIB), ok(0.6, 6 * MIB))
    _, verdict, time, memory = judged(runs, number_of_runs=3)
    assert verdict is Verdict.AC and len(runs.specs) == 3
    assert time == 0.3 and memory == 3 * MIB


def test_runs_stop_at_the_first_that_fails_and_average_those_made() -> None:
    crashed = BoxResult(Status.RE, 1, None, 0.3, 0.3, 5 * MIB, b"", b"", "Exited with 1")
    runs = Recorder(ok(0.1, 1 * MIB), crashed, ok())
    _, verdict, time, memory = judged(runs, number_of_runs=3)
    assert verdict is Verdict.RE and len(runs.specs) == 2
    assert time == 0.2 and memory == 3 * MIB


def test_a_memory_limit_below_the_box_floor_is_held_against_the_peak() -> None:
    box = Recorder(ok(memory=3 * MIB))
    _, verdict, _, _ = judged(box, memory_limit=2048)
    assert box.specs[0].limits.memory_bytes == BOX_MIN_MEMORY == 4 * MIB
    assert verdict is Verdict.MLE
    _, verdict, _, _ = judged(Recorder(ok(memory=1536 * KIB)), memory_limit=2048)
    assert verdict is Verdict.AC


def test_zero_cpu_and_stack_limits_are_none_as_in_isolate() -> None:
    box = Recorder(ok(time=4.0))
    sub, verdict, _, _ = judged(box, cpu_time_limit=0, stack_limit=0, wall_time_limit=6)
    limits = box.specs[0].limits
    assert verdict is Verdict.AC  # 4 s of CPU is no TLE when the CPU limit is none
    assert limits.cpu_time_s == sub.wall_time_limit + sub.cpu_extra_time  # the wall bounds it
    assert limits.stack_bytes is None
    box = Recorder(ok())
    judged(box, stack_limit=10)
    assert box.specs[0].limits.stack_bytes == 64 * KIB  # the box's floor
    box = Recorder(ok(time=1.5))
    _, verdict, _, _ = judged(box, cpu_time_limit=1)
    assert verdict is Verdict.TLE  # a limit that is set still holds
