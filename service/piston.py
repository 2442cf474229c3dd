"""Piston-compatible API: GET /api/v2/runtimes and POST /api/v2/execute (waits for the result)."""

from __future__ import annotations

import signal
from typing import Any

from flask import Blueprint, Response, jsonify

from service import piston_body
from service.core import core
from service.errors import ApiError, read_json
from service.judge0_view import main_case
from service.languages import LanguageInfo
from service.piston_body import fail
from service.semver import Version, satisfies
from worker.jobs.store import Record

bp = Blueprint("piston", __name__, url_prefix="/api/v2")
_STATUS = {"TLE": "TO", "OLE": "OL", "MLE": "SG", "IE": "XX"}
_BOX_VERDICT = {"TO": "TLE", "OLE": "OLE", "MLE": "MLE"}  # a compile box's status


@bp.get("/runtimes")
def runtimes() -> Response:
    c = core()
    disabled = c.disabled()
    return jsonify(
        [
            runtime(lang)
            for lang in c.languages.values()
            if lang.id not in disabled and lang.in_piston
        ]
    )


def runtime(lang: LanguageInfo) -> dict[str, Any]:
    """One /runtimes entry; `runtime` only where a package of another name provides the
    language, as Piston leaves it out for the rest."""
    p = lang.piston
    entry: dict[str, Any] = {"language": p.language, "version": lang.semver}
    entry["aliases"] = list(p.aliases)
    if p.runtime is not None:
        entry["runtime"] = p.runtime
    return entry


def find(language: Any, version: Any, languages: dict[int, LanguageInfo]) -> LanguageInfo:
    """Piston's resolution: every runtime the name (language or alias; Stockade's key too)
    names whose version satisfies the SemVer selector, the highest version first. A missing
    version is `*` here (Piston requires one)."""
    if not isinstance(language, str) or not language:
        raise fail("language is required as a string")
    if version is None:
        version = "*"
    if not isinstance(version, str):
        raise fail("version is required as a string")
    matching = [
        lang
        for lang in languages.values()
        if lang.in_piston
        and language in (lang.piston.language, *lang.piston.aliases, lang.key)
        and satisfies(lang.semver, version)
    ]
    if not matching:
        raise fail(f"{language}-{version} runtime is unknown")
    return max(matching, key=_version_key)


def _version_key(lang: LanguageInfo) -> tuple[Any, ...]:
    v = Version.parse(lang.semver)
    return v.key() if v else (0, 0, 0, 0, ())


def body(data: dict[str, Any], lang: LanguageInfo) -> dict[str, Any]:
    """The submission body: the first utf8 file is the program (Piston runs the first code
    file), under its own name where the language allows; every other file beside it."""
    files = piston_body.files(data.get("files"))
    program = next(f for f in files if f.utf8)
    name = piston_body.program_name(program, lang)
    stdin = data.get("stdin")
    if stdin is not None and not isinstance(stdin, str):
        raise fail("stdin: must be a string")
    stdin = stdin or ""
    if not stdin.endswith("\n"):
        stdin += "\n"  # Piston adds a trailing newline to stdin where it has none
    return {
        "source_code": program.content.decode(),
        "source_name": name if name != lang.source_file else "",
        "language_id": lang.id,
        "stdin": stdin,
        "command_line_arguments": piston_body.args_line(data.get("args")),
        "additional_files": piston_body.additional_files(
            [f for f in files if f is not program], name
        ),
        **piston_body.limits(data, lang, core().config),
    }


@bp.post("/execute")
def execute() -> tuple[Response, int]:
    c = core()
    data = read_json()
    if not isinstance(data, dict):
        raise fail("body: must be a JSON object")
    lang = find(data.get("language"), data.get("version"), c.languages)
    try:
        sub = c.parse(body(data, lang))
    except ApiError as e:
        if e.status in (400, 413):
            raise
        raise fail("; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in e.body.items())) from e
    token = c.submit(sub, meta={"api": "piston"})
    rec = c.wait(token)
    if rec is None or not rec.final:
        return jsonify({"message": f"no result within the wait timeout; token {token}"}), 504
    return jsonify(render(rec, lang)), 200


def render(rec: Record, lang: LanguageInfo) -> dict[str, Any]:
    """Piston's answer. Where the compile failed, `run` is a copy of `compile`, as Piston
    does for clients that read `run` alone."""
    res = rec.result or {}
    out: dict[str, Any] = {"language": lang.piston.language, "version": lang.semver}
    if lang.compile_cmd is not None:
        out["compile"] = _compile_stage(res)
        if res.get("verdict") == "CE":
            out["run"] = dict(out["compile"])
            return out
    case = main_case(res)
    sig = case.get("signal")
    verdict = case.get("verdict") or res.get("verdict")
    status = _STATUS.get(str(verdict)) or ("SG" if sig else "RE" if verdict == "RE" else None)
    message = case.get("message") or (rec.message if rec.status_id == 13 else "")
    stage = _stage(case.get("stdout", ""), case.get("stderr", ""), case.get("exit_code"), sig)
    if status in ("TO", "OL"):  # killed by Piston's own limit: SIGKILL, as its isolate says
        stage.update(code=None, signal="SIGKILL")
    stage.update(message=message or None, status=status)
    stage.update(_usage(case.get("time"), case.get("wall_time"), case.get("memory")))
    out["run"] = stage
    return out


def _compile_stage(res: dict[str, Any]) -> dict[str, Any]:
    """Stockade keeps the compiler's stdout and stderr as one text: it is Piston's stderr
    (compilers write their diagnostics there) and its output."""
    stats = res.get("compile") or {}
    failed = res.get("verdict") == "CE"
    code = stats.get("exit_code", 1 if failed else 0)
    if failed and code == 0:
        code = 1  # the compiler exited 0 but made no executable: a failure all the same
    stage = _stage("", res.get("compile_output") or "", code, stats.get("signal"))
    status = _STATUS.get(_BOX_VERDICT.get(stats.get("status", ""), ""))
    if status is None and failed:
        status = "SG" if stage["signal"] else "RE"
    if status in ("TO", "OL"):
        stage.update(code=None, signal="SIGKILL")
    stage.update(message=(res.get("message") or None) if failed else None, status=status)
    stage.update(_usage(stats.get("time"), stats.get("wall_time"), stats.get("memory")))
    return stage


def _usage(cpu_s: Any, wall_s: Any, memory: Any) -> dict[str, Any]:
    """Piston's newer stage fields: CPU and wall milliseconds, peak bytes."""
    return {
        "cpu_time": _ms(cpu_s),
        "wall_time": _ms(wall_s),
        "memory": memory if isinstance(memory, int) else None,
    }


def _ms(seconds: Any) -> float | None:
    return round(seconds * 1000, 3) if isinstance(seconds, int | float) else None


def _stage(stdout: str, stderr: str, code: int | None, sig: int | None) -> dict[str, Any]:
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
        "code": None if name else code,
        "signal": name,
    }
