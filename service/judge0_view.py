"""A stored record as Judge0 CE 1.13 shows a submission: its fields, units and base64."""

from __future__ import annotations

import base64
import datetime
from typing import Any

from service.errors import ApiError
from service.languages import LanguageInfo
from worker.jobs.model import JUDGE0_STATUSES
from worker.jobs.store import Record

DEFAULT_FIELDS = (
    "token", "stdout", "time", "memory", "stderr", "compile_output", "message", "status",
)  # fmt: skip
ALL_FIELDS = (
    "source_code", "language_id", "stdin", "expected_output", "stdout", "status_id",
    "created_at", "finished_at", "time", "memory", "stderr", "token", "number_of_runs",
    "cpu_time_limit", "cpu_extra_time", "wall_time_limit", "memory_limit", "stack_limit",
    "max_processes_and_or_threads", "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit", "max_file_size", "compile_output",
    "exit_code", "exit_signal", "message", "wall_time", "compiler_options",
    "command_line_arguments", "redirect_stderr_to_stdout", "callback_url", "additional_files",
    "enable_network", "post_execution_filesystem", "status", "language",
)  # fmt: skip
COMPILATION_ERROR = 6
BASE64_FIELDS = ("source_code", "stdin", "expected_output", "stdout", "stderr",
                 "compile_output", "message")  # fmt: skip
# Judge0's answers (submissions_controller.rb) when a field is not UTF-8 and the client did
# not ask for base64: 400 on a read, 201 with the token on a create with wait=true.
NOT_UTF8 = (
    "some attributes for this submission cannot be converted to UTF-8, "
    "use base64_encoded=true query parameter"
)
NOT_UTF8_MANY = (
    "some attributes for one or more submissions cannot be converted to UTF-8, "
    "use base64_encoded=true query parameter"
)


class NotUtf8(ApiError):
    """A field asked for as text holds bytes that are not UTF-8."""

    def __init__(self) -> None:
        super().__init__(400, {"error": NOT_UTF8})


def parse_fields(text: str | None) -> tuple[str, ...]:
    """The `fields` query parameter: comma-separated names, or * for all."""
    if not text:
        return DEFAULT_FIELDS
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if "*" in names:
        return ALL_FIELDS
    unknown = [n for n in names if n not in ALL_FIELDS]
    if unknown:
        raise ApiError.message(400, f"invalid fields: [{', '.join(unknown)}]")
    return names


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    dt = datetime.datetime.fromtimestamp(t, datetime.UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def seconds(value: Any) -> str | None:
    return f"{float(value):.3f}" if isinstance(value, int | float) else None


def main_case(result: dict[str, Any]) -> dict[str, Any]:
    """The case Judge0's single-run fields describe: the deciding one, else the first."""
    cases: list[dict[str, Any]] = result.get("cases") or []
    deciding = next((c for c in cases if c.get("verdict") != "AC"), None)
    return deciding or (cases[0] if cases else {})


def _message(rec: Record, res: dict[str, Any], case: dict[str, Any]) -> str | None:
    """Judge0's message is isolate's about the run (a time-out, a signal, an exit status).
    The deciding case's, then: the result's own names the case ("1: WA ...") for the native
    API, where several cases are judged, and is the record's message too."""
    if case:
        return case.get("message") or None
    if rec.status_id == COMPILATION_ERROR:
        return None
    return rec.message or res.get("message") or None


def render(
    rec: Record, fields: tuple[str, ...], b64: bool, languages: dict[int, LanguageInfo]
) -> dict[str, Any]:
    sub, res, meta = rec.submission, rec.result or {}, rec.meta
    case = main_case(res) if rec.final else {}
    if rec.status_id == COMPILATION_ERROR:
        # Judge0 clears what would describe a run that never happened (time, memory, ...).
        res, case = {"compile_output": res.get("compile_output")}, {}
    lang = languages.get(sub.language_id)
    memory = res.get("memory")
    full: dict[str, Any] = {
        "source_code": sub.source_code,
        "language_id": sub.language_id,
        "stdin": sub.stdin,
        "expected_output": sub.expected_output,
        "stdout": case.get("stdout") or None,
        "status_id": rec.status_id,
        "created_at": iso(rec.created_at),
        "finished_at": iso(rec.finished_at),
        "time": seconds(res.get("time")) if rec.final else None,
        "memory": memory // 1024 if isinstance(memory, int) and rec.final else None,
        "stderr": case.get("stderr") or None,
        "token": rec.token,
        "number_of_runs": sub.number_of_runs,
        "cpu_time_limit": seconds(sub.cpu_time_limit),
        "cpu_extra_time": seconds(sub.cpu_extra_time),
        "wall_time_limit": seconds(sub.wall_time_limit),
        "memory_limit": sub.memory_limit,
        "stack_limit": sub.stack_limit,
        "max_processes_and_or_threads": sub.max_processes_and_or_threads,
        "enable_per_process_and_thread_time_limit": meta.get("per_process_time", False),
        "enable_per_process_and_thread_memory_limit": meta.get("per_process_memory", False),
        "max_file_size": sub.max_file_size,
        "compile_output": res.get("compile_output") or None,
        # isolate writes no exit code for a signalled program and Judge0 then reports 0.
        "exit_code": (case.get("exit_code") or 0) if case else None,
        "exit_signal": case.get("signal"),
        "message": _message(rec, res, case),
        "wall_time": seconds(res.get("wall_time")),
        "compiler_options": sub.compiler_options or None,
        "command_line_arguments": sub.command_line_arguments or None,
        "redirect_stderr_to_stdout": sub.redirect_stderr_to_stdout,
        "callback_url": rec.callback_url,
        "additional_files": sub.additional_files or None,
        "enable_network": sub.enable_network,
        "post_execution_filesystem": None,
        "status": {"id": rec.status_id, "description": JUDGE0_STATUSES[rec.status_id]},
        "language": {"id": lang.id, "name": lang.name} if lang else None,
    }
    out = {name: full[name] for name in fields}
    exact = _exact_bytes(rec, case, res)
    if not b64 and any(name in exact for name in out):
        raise NotUtf8()
    if b64:
        for name in BASE64_FIELDS:
            if name in exact and name in out:
                out[name] = exact[name]
            elif isinstance(out.get(name), str):
                out[name] = base64.b64encode(out[name].encode()).decode()
    return out


def _exact_bytes(rec: Record, case: dict[str, Any], res: dict[str, Any]) -> dict[str, str]:
    """The fields whose bytes are not UTF-8, as the base64 of those bytes: a binary source
    (language 44) and output the worker kept exactly (stdout_b64 beside the lossy text)."""
    exact = {"source_code": rec.submission.source_code} if rec.submission.source_base64 else {}
    for name, value in (
        ("stdout", case.get("stdout_b64")),
        ("stderr", case.get("stderr_b64")),
        ("compile_output", res.get("compile_output_b64")),
    ):
        if isinstance(value, str) and value:
            exact[name] = value
    return exact
