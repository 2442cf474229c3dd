"""What a worker keeps of a submission: output per case and in total, runs, the stored result's
size. A recorder stands in for the launcher (the boxes' own output limit is the kernel's,
tested in tests/privileged/test_hostile_limits.py); the store is a fake one."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any, cast

import pytest

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec
from sandbox.stdio import Stdio
from tests.unit.test_tasks import FakeStore, record
from worker.jobs.languages import load_languages
from worker.jobs.model import JudgeResult, Submission, TestCase, Verdict
from worker.jobs.settings import WorkerSettings
from worker.judge import Judge
from worker.tasks import run_job
from worker.trim import fit_result, json_size, kept_output
from worker.trim import kept_bytes as kept_output_bytes

PYTHON = 71
KIB = 1024


class Loud:
    """A launcher whose every box writes `stdout` and `stderr` and exits 0."""

    def __init__(self, stdout: bytes, stderr: bytes = b"") -> None:
        self.stdout, self.stderr = stdout, stderr
        self.specs: list[BoxSpec] = []

    def run(self, spec: BoxSpec, stdio: Stdio | None = None) -> BoxResult:
        self.specs.append(spec)
        return BoxResult(Status.OK, 0, None, 0.01, 0.02, 1 << 20, self.stdout, self.stderr, "")


def judge(launcher: Loud, **budgets: int) -> Judge:
    return Judge(cast(Launcher, launcher), load_languages(), **budgets)  # type: ignore[arg-type]


def kept_bytes(result: JudgeResult) -> int:
    return sum(len(c.stdout.encode()) + len(c.stderr.encode()) for c in result.cases)


def test_the_defaults_keep_a_batch_of_loud_cases_within_the_total() -> None:
    # 80 cases, each printing 128 KiB: 10 MiB, more than the 8 MiB kept in all.
    s = WorkerSettings.from_env({})
    cases = tuple(TestCase(str(i)) for i in range(80))
    result = judge(Loud(b"x" * 128 * KIB)).judge(Submission("", PYTHON, test_cases=cases))
    assert result.verdict is Verdict.AC and len(result.cases) == 80
    assert kept_bytes(result) <= s.kept_output_total == 8 * 1024 * KIB
    assert all(len(c.stdout) <= s.kept_output_per_case for c in result.cases)
    assert result.cases[0].stdout == "x" * 128 * KIB and not result.cases[0].truncated
    assert result.cases[-1].stdout == "" and result.cases[-1].truncated


def test_per_case_budget_is_shared_by_stdout_and_stderr() -> None:
    cases = (TestCase("1"), TestCase("2"))
    loud = Loud(b"o" * 10 * KIB, b"e" * 10 * KIB)
    result = judge(loud, kept_output_per_case=4 * KIB).judge(
        Submission("", PYTHON, test_cases=cases)
    )
    case = result.cases[0]
    assert (len(case.stdout), len(case.stderr), case.truncated) == (2 * KIB, 2 * KIB, True)


def test_a_single_case_keeps_its_output_up_to_max_file_size() -> None:
    # Judge0 keeps what its max_file_size lets a program write, per stream; the per-case
    # budget (for suites of cases) does not cut the one case of a Judge0 submission.
    loud = Loud(b"o" * 300 * KIB, b"e" * 300 * KIB)
    sub = Submission("", PYTHON, max_file_size=256)
    case = judge(loud, kept_output_per_case=4 * KIB).judge(sub).cases[0]
    assert (len(case.stdout), len(case.stderr), case.truncated) == (256 * KIB, 256 * KIB, True)
    whole = judge(loud, kept_output_per_case=4 * KIB).judge(replace(sub, max_file_size=300))
    assert whole.cases[0].stdout == "o" * 300 * KIB and not whole.cases[0].truncated
    # ... within the submission's total budget.
    small = judge(loud, kept_output_total=64 * KIB).judge(replace(sub, max_file_size=300))
    assert kept_bytes(small) == 64 * KIB and small.cases[0].truncated


def test_output_that_is_not_utf8_is_kept_byte_for_byte() -> None:
    raw = bytes(range(256)) * 4
    result = judge(Loud(raw, b"\xff\xfeerr")).judge(Submission("", PYTHON))
    case = result.cases[0]
    assert base64.b64decode(case.stdout_b64 or "") == raw
    assert base64.b64decode(case.stderr_b64 or "") == b"\xff\xfeerr"
    assert case.stdout == raw.decode("utf-8", "replace")  # the text APIs' lossy view
    # Valid UTF-8 has no second copy, and the stored case says nothing of it.
    plain = judge(Loud("é\n".encode())).judge(Submission("", PYTHON)).cases[0]
    assert plain.stdout == "é\n" and plain.stdout_b64 is None
    assert "stdout_b64" not in plain.to_dict()


def test_a_cut_keeps_bytes_that_are_not_utf8_exactly() -> None:
    raw = b"\xff" * 10
    cases = (TestCase("1"), TestCase("2"))
    result = judge(Loud(raw), kept_output_per_case=4).judge(
        Submission("", PYTHON, test_cases=cases)
    )
    assert base64.b64decode(result.cases[0].stdout_b64 or "") == b"\xff" * 4
    assert kept_output_bytes(b"ab\xc3\xa9", b"", 3) == (b"ab", b"", True)  # no half of é
    assert kept_output_bytes(b"ab\xff\xfe", b"", 3) == (b"ab\xff", b"", True)


def test_kept_output_gives_one_stream_what_the_other_leaves() -> None:
    assert kept_output("a" * 10, "b" * 2, 8) == ("a" * 6, "b" * 2, True)
    assert kept_output("a" * 2, "b" * 10, 8) == ("a" * 2, "b" * 6, True)
    assert kept_output("abc", "de", 5) == ("abc", "de", False)
    assert kept_output("a" * 9, "b" * 9, 0) == ("", "", True)
    # A cut through a character drops it rather than growing the text past the room.
    out, _, cut = kept_output("é" * 4, "", 3)
    assert out == "é" and cut


def test_too_many_runs_is_internal_error_before_any_box() -> None:
    loud = Loud(b"")
    cases = tuple(TestCase(str(i)) for i in range(4))
    sub = Submission("", PYTHON, test_cases=cases, number_of_runs=3)
    result = judge(loud, max_runs=10).judge(sub)
    assert result.verdict is Verdict.IE and not loud.specs
    assert "test_cases: 4 case(s) x 3 run(s) = 12 boxes" in result.message
    assert "STOCKADE_MAX_RUNS_PER_SUBMISSION=10" in result.message
    assert judge(loud, max_runs=12).judge(sub).verdict is Verdict.AC


def test_worker_reads_its_budgets_from_the_environment() -> None:
    s = WorkerSettings.from_env(
        {
            "STOCKADE_MAX_RUNS_PER_SUBMISSION": "7",
            "STOCKADE_KEPT_OUTPUT_PER_CASE": "100",
            "STOCKADE_KEPT_OUTPUT_TOTAL": "1000",
            "STOCKADE_MAX_RESULT_BYTES": "5000",
        }
    )
    assert (s.max_runs, s.kept_output_per_case, s.kept_output_total) == (7, 100, 1000)
    assert s.max_result_bytes == 5000
    with pytest.raises(ValueError, match="STOCKADE_MAX_RESULT_BYTES: must be at least 4096"):
        WorkerSettings.from_env({"STOCKADE_MAX_RESULT_BYTES": "100"})


def big_result(cases: int, text: str) -> dict[str, Any]:
    one = {"name": "1", "verdict": "AC", "time": 0.01, "memory": 1, "points": 1.0,
           "message": "", "stdout": text, "stderr": text, "status": {"id": 3}}  # fmt: skip
    return {"verdict": "AC", "score": 1.0, "max_score": 1.0, "time": 0.01, "memory": 1,
            "compile_output": text, "message": "", "status": {"id": 3},
            "cases": [dict(one, name=str(i)) for i in range(cases)]}  # fmt: skip


@pytest.mark.parametrize("text", ["x" * 5000, "\ufffd" * 5000, "\U0001f600" * 2000])
def test_fit_result_holds_the_cap_on_the_json_as_stored(text: str) -> None:
    # Replacement characters (what undecodable output becomes) take 6 bytes as JSON each.
    result = big_result(30, text)
    fitted = fit_result(result, 20_000)
    assert json_size(fitted) <= 20_000 and fitted["truncated"] is True
    assert fitted["verdict"] == "AC" and fitted["status"] == {"id": 3}
    assert result["cases"][0]["stdout"] == text  # the judge's own copy is left alone


def test_fit_result_cuts_output_first_then_cases_then_everything_else() -> None:
    small = big_result(3, "hi")
    assert fit_result(small, 10_000) is small
    fitted = fit_result(big_result(3, "x" * 3000), 9000)
    assert [c["name"] for c in fitted["cases"]] == ["0", "1", "2"]
    assert fitted["cases"][-1]["stdout"] == "" and fitted["cases"][0]["stdout"]
    fitted = fit_result(big_result(2000, ""), 50_000)
    assert 1 <= len(fitted["cases"]) < 2000 and json_size(fitted) <= 50_000
    bare = fit_result(big_result(1, "x" * 100_000), 4096)
    assert bare["cases"] == [] and "STOCKADE_MAX_RESULT_BYTES" in bare["message"]
    assert json_size(bare) <= 4096


def test_the_worker_stores_at_most_max_result_bytes() -> None:
    def loud(sub: Submission) -> tuple[JudgeResult, dict[str, float]]:
        cases = tuple(TestCase(str(i)) for i in range(20))
        # Past the kept-output budgets: a worker whose operator raised them still fits.
        j = judge(Loud(b"\xff" * 64 * KIB), kept_output_total=10 << 20)
        return j.judge(Submission("", PYTHON, test_cases=cases)), {}

    store = FakeStore(record())
    assert run_job("tok", store, loud, 3, max_result_bytes=256 * KIB) == 3
    _, result, _ = store.finished[0]
    assert result is not None and result["truncated"] is True
    assert len(json.dumps(result)) <= 256 * KIB
    assert result["verdict"] == "AC" and len(result["cases"]) == 20


def test_a_long_message_is_cut() -> None:
    def broken(sub: Submission) -> tuple[JudgeResult, dict[str, float]]:
        raise ValueError("x" * 100_000)

    store = FakeStore(record())
    run_job("tok", store, broken, 3)
    assert len(store.finished[0][2]) <= 4096


def test_fit_result_cuts_a_cases_exact_bytes_with_its_text() -> None:
    result = big_result(2, "x" * 3000)
    for case in result["cases"]:
        case["stdout_b64"] = "QUJD" * 1000
    result["compile_output_b64"] = "QUJD" * 1000
    fitted = fit_result(result, 18_000)
    assert json_size(fitted) <= 18_000
    last = fitted["cases"][-1]
    assert last["stdout"] == "" and "stdout_b64" not in last  # never one without the other
    assert fitted["cases"][0]["stdout_b64"] and fitted["compile_output_b64"]
    # Tighter: the compiler's exact bytes go before its text is cut.
    fitted = fit_result(result, 6_000)
    assert json_size(fitted) <= 6_000
    assert "compile_output_b64" not in fitted and fitted["compile_output"] == "x" * 3000


def test_compiler_output_that_is_not_utf8_is_kept_exactly() -> None:
    class Failing(Loud):
        def run(self, spec: BoxSpec, stdio: Stdio | None = None) -> BoxResult:
            return BoxResult(Status.RE, 1, None, 0.01, 0.02, 1, b"", b"main.c: \xe9rror\n", "")

    result = judge(Failing(b"")).judge(Submission("int main(", 50))
    assert result.verdict is Verdict.CE
    assert base64.b64decode(result.compile_output_b64 or "") == b"main.c: \xe9rror\n"
    assert result.compile_output == "main.c: \ufffdrror\n"
    assert result.to_dict()["compile_output_b64"] == result.compile_output_b64
