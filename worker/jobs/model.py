"""The submission model: Judge0's fields plus test cases, checker, interactor; and results.
The rules a submission must keep are in worker.jobs.rules."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import json
from dataclasses import dataclass, field
from typing import Any

# Judge0 CE's defaults and maxima (config/judge0.conf): units are Judge0's own, seconds and
# kilobytes, so that Judge0 clients send what they always sent.
DEFAULTS: dict[str, float] = {
    "cpu_time_limit": 5.0,
    "cpu_extra_time": 1.0,
    "wall_time_limit": 10.0,
    "memory_limit": 128000,
    "stack_limit": 64000,
    "max_processes_and_or_threads": 60,
    "max_file_size": 1024,
    "number_of_runs": 1,
}
MAXIMA: dict[str, float] = {
    "cpu_time_limit": 15.0,
    "cpu_extra_time": 5.0,
    "wall_time_limit": 20.0,
    "memory_limit": 512000,
    "stack_limit": 128000,
    "max_processes_and_or_threads": 120,
    "max_file_size": 4096,
    "number_of_runs": 20,
}
# Judge0 CE 1.13.1's own lower bounds (app/models/submission.rb), except wall_time_limit:
# Judge0 asks for 1 s there, its API refuses less (service/judge0_params.py), the native API
# takes less. Isolate reads a zero CPU or stack limit as none; so does the judge.
MINIMA: dict[str, float] = {
    "cpu_time_limit": 0.0,
    "cpu_extra_time": 0.0,
    "wall_time_limit": 0.01,
    "memory_limit": 2048,
    "stack_limit": 0,
    "max_processes_and_or_threads": 1,
    "max_file_size": 0,
    "number_of_runs": 1,
}


@dataclass(frozen=True)
class TestCase:
    """One test: the program's stdin, the answer a checker compares with, and its points."""

    __test__ = False  # not a pytest class

    input: str = ""
    expected_output: str | None = None
    points: float = 1.0
    name: str = ""


@dataclass(frozen=True)
class Program:
    """A helper program of the problem's own (custom checker or interactor), run boxed."""

    source_code: str
    language_id: int
    # testlib: `prog input output answer`, exit 0 accepted, 1/2 wrong answer.
    # icpc: `prog input answer feedback_dir` (team output on stdin), exit 42 / 43.
    convention: str = "testlib"
    args: tuple[str, ...] = ()  # extra arguments after the convention's own


@dataclass(frozen=True)
class CheckerSpec:
    """How a case's output is judged. `custom` runs `program` in a box."""

    kind: str = "judge0"
    abs_tolerance: float = 1e-6
    rel_tolerance: float = 1e-6
    case_sensitive: bool = True
    program: Program | None = None


@dataclass(frozen=True)
class Submission:
    """Judge0's submission fields (same names, same units) plus ours: cases, checker,
    interactor. Without `test_cases`, stdin/expected_output form the one case, as in Judge0."""

    source_code: str = ""
    language_id: int = 0
    stdin: str = ""
    expected_output: str | None = None
    cpu_time_limit: float = DEFAULTS["cpu_time_limit"]
    cpu_extra_time: float = DEFAULTS["cpu_extra_time"]
    wall_time_limit: float = DEFAULTS["wall_time_limit"]
    memory_limit: int = int(DEFAULTS["memory_limit"])  # KB
    stack_limit: int = int(DEFAULTS["stack_limit"])  # KB
    max_processes_and_or_threads: int = int(DEFAULTS["max_processes_and_or_threads"])
    max_file_size: int = int(DEFAULTS["max_file_size"])  # KB
    enable_network: bool = False
    command_line_arguments: str = ""
    compiler_options: str = ""
    additional_files: str = ""  # base64 of a zip
    redirect_stderr_to_stdout: bool = False
    number_of_runs: int = int(DEFAULTS["number_of_runs"])
    test_cases: tuple[TestCase, ...] = ()
    checker: CheckerSpec = field(default_factory=CheckerSpec)
    interactor: Program | None = None
    # container, gvisor or microvm; "" means the language's own default. The worker runs the
    # strongest of this, the language's default and the operator's minimum.
    tier: str = ""
    # An uploaded problem package's id (POST /api/v1/problems): judged against its cases,
    # validator and limits instead of this submission's own.
    problem: str = ""
    # An uploaded assignment's id (POST /api/v1/assignments): the submission's files (the zip
    # in additional_files) are graded against its tests instead of judged.
    assignment: str = ""
    # The program's path in /box (Piston writes each file under its own name): "" is the
    # language's own source_file. The language's argvs follow it (see languages.renamed).
    source_name: str = ""
    # The compile box's limits, each at most the language's own [compile_limits] (the
    # operator's); 0 keeps the language's own. Seconds and kilobytes, as Judge0's fields.
    compile_cpu_time_limit: float = 0.0
    compile_wall_time_limit: float = 0.0
    compile_memory_limit: int = 0
    # The source's bytes are not UTF-8 (Judge0's 44, Executable: the source is a binary),
    # so `source_code` holds their base64 instead of lossy text.
    source_base64: bool = False

    def source_bytes(self) -> bytes:
        """The program's bytes as the box gets them."""
        if not self.source_base64:
            return self.source_code.encode()
        try:
            return base64.b64decode(self.source_code, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("source_code: not valid base64 (source_base64 is set)") from None

    def cases(self) -> tuple[TestCase, ...]:
        if self.test_cases:
            return self.test_cases
        return (TestCase(self.stdin, self.expected_output, 1.0, "1"),)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Submission:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Submission:
        """Builds without judging the values (see validate()); unknown fields are errors."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown field")
        d = {k: v for k, v in data.items() if v is not None or k == "expected_output"}
        d["test_cases"] = tuple(
            TestCase(**c) if isinstance(c, dict) else c for c in d.get("test_cases", ())
        )
        checker = d.get("checker")
        if isinstance(checker, dict):
            checker = dict(checker)
            checker["program"] = _program(checker.get("program"))
            d["checker"] = CheckerSpec(**checker)
        d["interactor"] = _program(d.get("interactor"))
        return cls(**d)


def _program(value: Any) -> Program | None:
    if value is None or isinstance(value, Program):
        return value
    v = dict(value)
    v["args"] = tuple(v.get("args", ()))
    return Program(**v)


# --- Results ---------------------------------------------------------------------------------


class Verdict(enum.StrEnum):
    AC = "AC"
    WA = "WA"
    TLE = "TLE"
    MLE = "MLE"
    RE = "RE"
    OLE = "OLE"
    CE = "CE"
    IE = "IE"


# Judge0 CE's status ids (app/enumerations/status.rb) and descriptions.
JUDGE0_STATUSES = {
    1: "In Queue",
    2: "Processing",
    3: "Accepted",
    4: "Wrong Answer",
    5: "Time Limit Exceeded",
    6: "Compilation Error",
    7: "Runtime Error (SIGSEGV)",
    8: "Runtime Error (SIGXFSZ)",
    9: "Runtime Error (SIGFPE)",
    10: "Runtime Error (SIGABRT)",
    11: "Runtime Error (NZEC)",
    12: "Runtime Error (Other)",
    13: "Internal Error",
    14: "Exec Format Error",
}
# Judge0 reports a signal by its Linux number: SIGSEGV 11, SIGXFSZ 25, SIGFPE 8, SIGABRT 6.
_SIGNAL_STATUS = {11: 7, 25: 8, 8: 9, 6: 10}


@dataclass(frozen=True)
class CaseResult:
    name: str
    verdict: Verdict
    time: float  # CPU seconds
    memory: int  # peak bytes
    points: float = 0.0  # awarded
    message: str = ""
    exit_code: int | None = None
    signal: int | None = None
    exec_format: bool = False
    wall_time: float = 0.0  # seconds
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False  # stdout/stderr are the heads of what the program wrote
    # The exact bytes in base64, only when they are not UTF-8 (stdout/stderr are then lossy).
    stdout_b64: str | None = None
    stderr_b64: str | None = None

    def judge0_status(self) -> int:
        return judge0_status(self.verdict, self.signal, self.exec_format)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("stdout_b64", "stderr_b64"):
            if d[key] is None:
                del d[key]
        d["verdict"] = self.verdict.value
        d["status"] = {"id": self.judge0_status(), "description": status_text(self)}
        return d


@dataclass(frozen=True)
class CompileStats:
    """What the compile box used: CPU and wall seconds, peak bytes; how it ended (the box's
    status: OK, RE, SG, TO, MLE, OLE), its exit code or signal."""

    time: float
    wall_time: float
    memory: int
    exit_code: int | None = None
    signal: int | None = None
    status: str = ""


@dataclass(frozen=True)
class GroupResult:
    """A test group of a problem package (a folder of data/): its verdict and score."""

    name: str
    verdict: Verdict
    score: float
    max_score: float

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "verdict": self.verdict.value}


@dataclass(frozen=True)
class JudgeResult:
    verdict: Verdict
    score: float
    max_score: float
    cases: tuple[CaseResult, ...] = ()
    compile_output: str = ""
    message: str = ""
    groups: tuple[GroupResult, ...] = ()  # a package's groups, outermost first
    compile: CompileStats | None = None  # the compile box's use, where one ran
    compile_output_b64: str | None = None  # the exact bytes, when they are not UTF-8

    @classmethod
    def failed(
        cls,
        verdict: Verdict,
        output: str,
        compile: CompileStats | None = None,
        output_b64: str | None = None,
    ) -> JudgeResult:
        """A submission that never ran: CE with the compiler's output, or IE."""
        if verdict is Verdict.CE:
            return cls(
                verdict,
                0.0,
                0.0,
                compile_output=output,
                message="Compilation error",
                compile=compile,
                compile_output_b64=output_b64,
            )
        return cls(verdict, 0.0, 0.0, message=output, compile=compile)

    @property
    def time(self) -> float:
        return max((c.time for c in self.cases), default=0.0)

    @property
    def memory(self) -> int:
        return max((c.memory for c in self.cases), default=0)

    def deciding_case(self) -> CaseResult | None:
        return next((c for c in self.cases if c.verdict is not Verdict.AC), None)

    def judge0_status(self) -> int:
        case = self.deciding_case()
        if case is not None:
            return case.judge0_status()
        return judge0_status(self.verdict, None, False)

    def to_dict(self) -> dict[str, Any]:
        status = self.judge0_status()
        return {
            "verdict": self.verdict.value,
            "score": self.score,
            "max_score": self.max_score,
            "time": self.time,
            "memory": self.memory,
            "compile_output": self.compile_output,
            **({"compile_output_b64": self.compile_output_b64} if self.compile_output_b64 else {}),
            "message": self.message,
            "status": {"id": status, "description": JUDGE0_STATUSES[status]},
            "cases": [c.to_dict() for c in self.cases],
            **({"groups": [g.to_dict() for g in self.groups]} if self.groups else {}),
            **({"compile": dataclasses.asdict(self.compile)} if self.compile else {}),
        }


def judge0_status(verdict: Verdict, signal: int | None, exec_format: bool) -> int:
    """Our verdict as Judge0's status id. Judge0 has no MLE or OLE of its own: its memory
    limit kills with a signal (Other) and its output is a file capped by RLIMIT_FSIZE."""
    if verdict is Verdict.RE:
        if exec_format:
            return 14
        if signal is not None:
            return _SIGNAL_STATUS.get(signal, 12)
        return 11
    return {
        Verdict.AC: 3,
        Verdict.WA: 4,
        Verdict.TLE: 5,
        Verdict.CE: 6,
        Verdict.MLE: 12,
        Verdict.OLE: 8,
        Verdict.IE: 13,
    }[verdict]


def status_text(case: CaseResult) -> str:
    return JUDGE0_STATUSES[case.judge0_status()]


def aggregate(cases: list[CaseResult], max_score: float) -> JudgeResult:
    """The first non-AC case decides; the score is the points of the accepted cases."""
    first = next((c for c in cases if c.verdict is not Verdict.AC), None)
    verdict = first.verdict if first else Verdict.AC
    score = sum(c.points for c in cases if c.verdict is Verdict.AC)
    message = f"{first.name}: {first.verdict.value} {first.message}".strip() if first else ""
    return JudgeResult(verdict, score, max_score, tuple(cases), message=message)
