"""Request body -> validated Submission, shared by the Judge0, native and Piston APIs."""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Any

from service.config import Config
from service.errors import ApiError
from service.languages import LanguageInfo
from worker.jobs.archives import ArchiveError, extract_zip
from worker.jobs.callback_guard import CallbackRefused, check_literal
from worker.jobs.model import DEFAULTS, Submission, validate

_STRINGS = ("source_code", "stdin", "command_line_arguments", "compiler_options")
_BOOLS = ("enable_network", "redirect_stderr_to_stdout")
_CASE_TYPES: dict[str, tuple[type, ...]] = {
    "input": (str,),
    "expected_output": (str, type(None)),
    "points": (int, float),
    "name": (str,),
}
_PROGRAM_TYPES: dict[str, tuple[type, ...]] = {
    "source_code": (str,),
    "language_id": (int,),
    "convention": (str,),
    "args": (list,),
}
_CHECKER_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "abs_tolerance": (int, float),
    "rel_tolerance": (int, float),
    "case_sensitive": (bool,),
    "program": (dict, type(None)),
}
# Judge0 1.13 after CVE-2024-28185: options are words, never shell syntax.
_COMPILER_OPTIONS = re.compile(r"^[A-Za-z0-9_\-+.=,:/ ]*$")
MAX_ARGS_CHARS = 512


def b64decode(name: str, value: Any) -> Any:
    """A base64 field's text; 422 naming the field when it is not base64 or not UTF-8."""
    if not isinstance(value, str):
        return value
    try:
        return base64.b64decode("".join(value.split()), validate=True).decode()
    except (binascii.Error, ValueError):
        raise ApiError.field(422, name, "must be valid base64 of UTF-8 text") from None


def parse(
    data: dict[str, Any],
    config: Config,
    languages: dict[int, LanguageInfo],
    disabled: set[int],
) -> Submission:
    """Type checks, builds, then checks every rule; any failure is a 4xx naming the field."""
    errors = _type_errors(data)
    if errors:
        raise ApiError.fields(422, errors)
    try:
        sub = Submission.from_dict(data)
    except (TypeError, ValueError) as e:
        field, _, rule = str(e).partition(": ")
        raise ApiError.field(422, field if rule else "body", rule or field) from None
    if len(sub.source_code.encode()) > config.max_source_bytes:
        raise ApiError.field(413, "source_code", f"must be at most {config.max_source_bytes} bytes")
    errors = validate(sub) + _operator_errors(sub, config, languages, disabled)
    if errors:
        raise ApiError.fields(422, errors)
    return sub


def _type_errors(data: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    if "language_id" not in data:
        errors.append("language_id: can't be blank")
    for name in _STRINGS:
        if data.get(name) is not None and not isinstance(data[name], str):
            errors.append(f"{name}: must be a string")
    if data.get("expected_output") is not None and not isinstance(data["expected_output"], str):
        errors.append("expected_output: must be a string or null")
    for name in _BOOLS:
        if data.get(name) is not None and not isinstance(data[name], bool):
            errors.append(f"{name}: must be true or false")
    for name in ("language_id", *DEFAULTS):
        v = data.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            errors.append(f"{name}: must be a number")
        elif isinstance(v, float) and not math.isfinite(v):
            errors.append(f"{name}: must be a finite number")
    if isinstance(data.get("language_id"), float):
        errors.append("language_id: must be an integer")
    if data.get("additional_files") is not None:
        if not isinstance(data["additional_files"], str):
            errors.append("additional_files: must be a base64 string of a zip")
        else:
            try:
                archive = base64.b64decode(data["additional_files"], validate=True)
            except (binascii.Error, ValueError):
                errors.append("additional_files: must be valid base64 (of a zip)")
            else:
                # Refused at the edge with the worker's own rules (in memory, capped), so a
                # hostile archive is a 422 now rather than a compilation error later.
                try:
                    extract_zip(archive) if archive else None
                except ArchiveError as e:
                    errors.append(f"additional_files: {e}")
    cases = data.get("test_cases")
    if cases is not None:
        if not isinstance(cases, list):
            errors.append("test_cases: must be a list of objects")
        else:
            for i, case in enumerate(cases):
                errors += _object_errors(f"test_cases[{i}]", case, _CASE_TYPES)
    checker = data.get("checker")
    if checker is not None:
        errors += _object_errors("checker", checker, _CHECKER_TYPES)
        if isinstance(checker, dict) and isinstance(checker.get("program"), dict):
            errors += _object_errors("checker.program", checker["program"], _PROGRAM_TYPES)
    if data.get("interactor") is not None:
        errors += _object_errors("interactor", data["interactor"], _PROGRAM_TYPES)
    return errors


def _object_errors(where: str, value: Any, types: dict[str, tuple[type, ...]]) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: must be an object"]
    errors = [f"{where}.{k}: unknown field" for k in value if k not in types]
    for k, allowed in types.items():
        v = value.get(k)
        if k in value and (
            not isinstance(v, allowed) or (isinstance(v, bool) and bool not in allowed)
        ):
            errors.append(f"{where}.{k}: wrong type {type(v).__name__}")
    if "source_code" in types and "source_code" not in value:
        errors.append(f"{where}.source_code: can't be blank")
    return errors


def _operator_errors(
    sub: Submission, config: Config, languages: dict[int, LanguageInfo], disabled: set[int]
) -> list[str]:
    errors: list[str] = []
    programs = [("language_id", sub.language_id)]
    if sub.checker.program is not None:
        programs.append(("checker.program.language_id", sub.checker.program.language_id))
    if sub.interactor is not None:
        programs.append(("interactor.language_id", sub.interactor.language_id))
    for where, lang in programs:
        if lang not in languages:
            errors.append(f"{where}: language with id {lang} doesn't exist")
        elif lang in disabled:
            errors.append(f"{where}: language with id {lang} is disabled (self-test failed)")
    for name, high in config.max_limits.items():
        value = getattr(sub, name)
        if isinstance(value, int | float) and value > high:
            errors.append(f"{name}: must be at most {high:g} on this server, got {value:g}")
    if sub.enable_network and not config.allow_network:
        errors.append("enable_network: not allowed on this server")
    if not _COMPILER_OPTIONS.match(sub.compiler_options) or len(sub.compiler_options) > 512:
        errors.append(
            "compiler_options: at most 512 characters of letters, digits and _-+.=,:/ and space"
        )
    info = languages.get(sub.language_id)
    if sub.compiler_options and info is not None and info.compile_cmd is None:
        errors.append("compiler_options: only allowed for compiled languages")
    if len(sub.command_line_arguments) > MAX_ARGS_CHARS:
        errors.append(f"command_line_arguments: at most {MAX_ARGS_CHARS} characters")
    return errors


def check_callback_url(url: Any, config: Config) -> str | None:
    """An http(s) URL whose host is not an internal address literal, by the workers' own
    guard. Names are checked again after DNS resolution by the worker when it calls back
    (CVE-2024-29021)."""
    if url is None or url == "":
        return None
    if not isinstance(url, str):
        raise ApiError.field(422, "callback_url", "must be a string")
    try:
        check_literal(url, config.callback_allow_private)
    except CallbackRefused as e:
        raise ApiError.field(422, "callback_url", e.rule) from None
    return url
