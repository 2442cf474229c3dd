"""A Piston v2 execute body as a Stockade submission body: files by name and encoding, args,
stdin, and the six stage limits with Piston's own checks and messages (api/v2.js)."""

from __future__ import annotations

import base64
import binascii
import io
import posixpath
import shlex
import zipfile
from dataclasses import dataclass
from typing import Any

from service.config import Config
from service.errors import ApiError
from service.languages import LanguageInfo
from worker.jobs.model import MAXIMA
from worker.jobs.rules import MAX_SOURCE_NAME_CHARS, SOURCE_NAME

ENCODINGS = ("base64", "hex", "utf8")
KB = 1024


def fail(text: str) -> ApiError:
    return ApiError(400, {"message": text})  # Piston's error body


@dataclass(frozen=True)
class File:
    name: str
    content: bytes
    utf8: bool  # sent as text: Piston's code files, the first of them the program


def files(value: Any) -> list[File]:
    """Each file decoded by its encoding (Piston reads an unknown one as utf8) under its
    normalised path; a path that leaves the submission's directory is refused."""
    if not isinstance(value, list):
        raise fail("files is required as an array")
    out: list[File] = []
    for i, f in enumerate(value):
        if not isinstance(f, dict) or not isinstance(f.get("content"), str):
            raise fail(f"files[{i}].content is required as a string")
        encoding = str(f["encoding"]) if f.get("encoding") in ENCODINGS else "utf8"
        name = _path(i, f.get("name") or f"file{i}.code")
        if any(o.name == name for o in out):
            raise fail(f'files[{i}].name: "{name}" is the name of an earlier file')
        out.append(File(name, _decode(i, f["content"], encoding), encoding == "utf8"))
    if not any(f.utf8 for f in out):
        raise fail("files must include at least one utf8 encoded file")
    return out


def _path(i: int, name: Any) -> str:
    if not isinstance(name, str) or "\0" in name:
        raise fail(f"files[{i}].name: must be a string without NUL")
    # Piston joins the name under its job directory, so `/a/b` is `a/b` there too.
    path = posixpath.normpath("/" + name).lstrip("/")
    if path.startswith("..") or posixpath.normpath(name).startswith("..") or not path:
        raise fail(f'files[{i}].name: "{name}" tries to escape the submission directory')
    return path


def _decode(i: int, content: str, encoding: str) -> bytes:
    try:
        if encoding == "base64":
            return base64.b64decode("".join(content.split()), validate=True)
        if encoding == "hex":
            return bytes.fromhex(content)
    except (binascii.Error, ValueError):
        raise fail(f"files[{i}].content: not valid {encoding}") from None
    return content.encode()


def program_name(program: File, lang: LanguageInfo) -> str:
    """The program keeps its name where the toolchain can be told it: the language's own
    extension (Piston adds the extension where a compiler needs one) and a name the argvs can
    hold unquoted; otherwise it takes the language's own name, as a Judge0 submission."""
    name, own = program.name, lang.source_file
    same_ext = posixpath.splitext(name)[1] == posixpath.splitext(own)[1]
    if same_ext and len(name) <= MAX_SOURCE_NAME_CHARS and SOURCE_NAME.match(name):
        return name
    return own


def additional_files(rest: list[File], program: str) -> str:
    """Every file but the program, as the base64 zip a Judge0 submission carries."""
    if not rest:
        return ""
    clash = next((f.name for f in rest if f.name == program), None)
    if clash is not None:
        raise fail(f'files: "{clash}" is also the name the program is written under')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in rest:
            z.writestr(f.name, f.content)
    return base64.b64encode(buf.getvalue()).decode()


def args_line(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise fail("args: must be a list of strings")
    return shlex.join(value)


# Piston's six limits: (request field, Stockade field, the request's unit per Stockade unit).
RUN_LIMITS = (
    ("run_timeout", "wall_time_limit", 1000),  # ms -> s
    ("run_cpu_time", "cpu_time_limit", 1000),  # ms -> s
    ("run_memory_limit", "memory_limit", KB),  # bytes -> KB
)
COMPILE_LIMITS = (
    ("compile_timeout", "compile_wall_time_limit", 1000),
    ("compile_cpu_time", "compile_cpu_time_limit", 1000),
    ("compile_memory_limit", "compile_memory_limit", KB),
)


def configured(field: str, lang: LanguageInfo, config: Config) -> float:
    """Piston's `configured limit`, in the request's unit: the operator's maxima for the run
    stage, the language's own compile box for the compile stage."""
    compile_own = {
        "compile_timeout": lang.compile_wall_s * 1000,
        "compile_cpu_time": lang.compile_cpu_s * 1000,
        "compile_memory_limit": lang.compile_memory_bytes,
    }
    if field in compile_own:
        return compile_own[field]
    ours, unit = next((o, u) for f, o, u in RUN_LIMITS if f == field)
    return config.max_limits.get(ours, MAXIMA[ours]) * unit


def _number(value: float) -> str:
    """As JavaScript prints a number: 20000, not 20000.0 nor 2e+04."""
    return str(int(value)) if float(value).is_integer() else repr(value)


def limits(data: dict[str, Any], lang: LanguageInfo, config: Config) -> dict[str, Any]:
    """The limits asked for, as Stockade fields, with Piston's checks in its order: a number,
    at most the configured limit, not negative. 0 or absent keeps the default (Piston skips
    its checks for a falsy value), and -1 for a memory limit is the configured limit (what
    Piston's -1, "no limit", comes to under a configured one)."""
    out: dict[str, Any] = {}
    for field, ours, unit in (*RUN_LIMITS, *COMPILE_LIMITS):
        value = data.get(field)
        if value is None or value is False or value == 0:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(f"If specified, {field} must be a number")
        limit = configured(field, lang, config)
        if field.endswith("memory_limit") and value == -1:
            value = limit
        if value > limit:
            raise fail(f"{field} cannot exceed the configured limit of {_number(limit)}")
        if value < 0:
            raise fail(f"{field} must be non-negative")
        out[ours] = value / unit if unit == 1000 else max(1, int(value // unit))
    if "cpu_time_limit" in out:
        out["cpu_extra_time"] = 0  # Piston's isolate runs with --extra-time=0
    return out
