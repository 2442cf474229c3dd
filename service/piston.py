"""Piston-compatible API: GET /api/v2/runtimes and POST /api/v2/execute (waits for the result)."""

from __future__ import annotations

import base64
import io
import shlex
import signal
import zipfile
from typing import Any

from flask import Blueprint, Response, jsonify

from service import submissions
from service.core import core
from service.errors import ApiError, read_json
from service.judge0_view import main_case
from service.languages import LanguageInfo
from worker.jobs.store import Record

bp = Blueprint("piston", __name__, url_prefix="/api/v2")
_STATUS = {"TLE": "TO", "OLE": "OL", "MLE": "SG", "IE": "XX"}


def _fail(text: str) -> ApiError:
    return ApiError(400, {"message": text})  # Piston's error body


@bp.get("/runtimes")
def runtimes() -> Response:
    c = core()
    disabled = c.disabled()
    return jsonify(
        [
            {"language": lang.aliases[0], "version": lang.version, "aliases": list(lang.aliases)}
            for lang in c.languages.values()
            if lang.id not in disabled
        ]
    )


def find(language: Any, version: Any, languages: dict[int, LanguageInfo]) -> LanguageInfo:
    if not isinstance(language, str) or not language:
        raise _fail("language: must be a non-empty string")
    if version is not None and not isinstance(version, str):
        raise _fail("version: must be a string")
    for lang in languages.values():
        named = language.lower() in (lang.key, *lang.aliases)
        if named and (version in (None, "", "*") or lang.version.startswith(str(version))):
            return lang
    raise _fail(f"{language}-{version} runtime is unknown")


def _files(files: Any) -> tuple[str, str]:
    """The first file is the program; the rest travel as Judge0's additional_files zip."""
    if not isinstance(files, list) or not files or not all(isinstance(f, dict) for f in files):
        raise _fail("files: must be a non-empty list of {name, content} objects")
    texts = []
    for i, f in enumerate(files):
        content = f.get("content")
        if not isinstance(content, str):
            raise _fail(f"files[{i}].content: must be a string")
        if f.get("encoding") == "base64":
            content = submissions.b64decode(f"files[{i}].content", content)
        texts.append((str(f.get("name") or f"file{i}"), content))
    extra = ""
    if len(texts) > 1:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for name, content in texts[1:]:
                z.writestr(name, content)
        extra = base64.b64encode(buf.getvalue()).decode()
    return texts[0][1], extra


def _body(data: dict[str, Any], lang: LanguageInfo) -> dict[str, Any]:
    source, extra = _files(data.get("files"))
    args = data.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise _fail("args: must be a list of strings")
    body: dict[str, Any] = {
        "source_code": source,
        "language_id": lang.id,
        "stdin": data.get("stdin") or "",
        "command_line_arguments": shlex.join(args),
        "additional_files": extra,
    }
    timeout = data.get("run_timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise _fail("run_timeout: must be a positive number of milliseconds")
        body["cpu_time_limit"] = body["wall_time_limit"] = timeout / 1000
    memory = data.get("run_memory_limit")
    if memory is not None and memory != -1:
        if isinstance(memory, bool) or not isinstance(memory, int) or memory <= 0:
            raise _fail("run_memory_limit: must be a positive number of bytes or -1")
        body["memory_limit"] = memory // 1024
    return body


@bp.post("/execute")
def execute() -> tuple[Response, int]:
    c = core()
    data = read_json()
    if not isinstance(data, dict):
        raise _fail("body: must be a JSON object")
    lang = find(data.get("language"), data.get("version"), c.languages)
    try:
        sub = c.parse(_body(data, lang))
    except ApiError as e:
        if e.status == 413:
            raise
        raise _fail("; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in e.body.items())) from e
    token = c.submit(sub, meta={"api": "piston"})
    rec = c.wait(token)
    if rec is None or not rec.final:
        return jsonify({"message": f"no result within the wait timeout; token {token}"}), 504
    return jsonify(render(rec, lang)), 200


def render(rec: Record, lang: LanguageInfo) -> dict[str, Any]:
    res = rec.result or {}
    out: dict[str, Any] = {"language": lang.aliases[0], "version": lang.version}
    compile_output = res.get("compile_output") or ""
    if lang.compile_cmd is not None:
        failed = res.get("verdict") == "CE"
        out["compile"] = _stage("", compile_output, 1 if failed else 0, None, None, "")
        if failed:
            return out
    case = main_case(res)
    sig = case.get("signal")
    verdict = case.get("verdict") or res.get("verdict")
    status = _STATUS.get(str(verdict)) or ("SG" if sig else "RE" if verdict == "RE" else None)
    message = case.get("message") or (rec.message if rec.status_id == 13 else "")
    out["run"] = _stage(
        case.get("stdout", ""), case.get("stderr", ""), case.get("exit_code"), sig, status, message
    )
    return out


def _stage(
    stdout: str, stderr: str, code: int | None, sig: int | None, status: str | None, message: str
) -> dict[str, Any]:
    name = None
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
    return {
        "stdout": stdout,
        "stderr": stderr,
        "output": stdout + stderr,
        "code": code,
        "signal": name,
        "message": message or None,
        "status": status,
    }
