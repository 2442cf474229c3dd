"""Request body -> validated Submission, shared by the Judge0, native and Piston APIs."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from service.config import Config
from service.errors import ApiError
from service.languages import LanguageInfo, refusal
from worker.jobs.archives import ArchiveError, extract_zip
from worker.jobs.budgets import runs_refused
from worker.jobs.callback_guard import CallbackRefused, check_literal
from worker.jobs.model import Submission
from worker.jobs.rules import type_errors, validate


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
    if "assignment" in data:
        rule = "a submission is graded through POST /api/v1/assignments/<id>/submissions"
        raise ApiError.field(422, "assignment", rule)
    errors = _type_errors(data)
    if errors:
        raise ApiError.fields(422, errors)
    try:
        sub = Submission.from_dict(data)
    except (TypeError, ValueError) as e:
        field, _, rule = str(e).partition(": ")
        raise ApiError.field(422, field if rule else "body", rule or field) from None
    # A checker's and an interactor's code are the client's too: the same cap.
    sources = [("source_code", sub.source_code)]
    if sub.checker.program is not None:
        sources.append(("checker.program.source_code", sub.checker.program.source_code))
    if sub.interactor is not None:
        sources.append(("interactor.source_code", sub.interactor.source_code))
    for name, source in sources:
        if len(source.encode()) > config.max_source_bytes:
            raise ApiError.field(413, name, f"must be at most {config.max_source_bytes} bytes")
    errors = validate(sub) + _operator_errors(sub, config, languages, disabled)
    if errors:
        raise ApiError.fields(422, errors)
    return sub


def _type_errors(data: dict[str, Any]) -> list[str]:
    """The model's type rules (the worker checks a queued job by the same), and the archive."""
    errors = type_errors(data)
    files = data.get("additional_files")
    if isinstance(files, str):
        try:
            archive = base64.b64decode(files, validate=True)
        except (binascii.Error, ValueError):
            errors.append("additional_files: must be valid base64 (of a zip)")
        else:
            # Refused at the edge with the worker's own rules (in memory, capped), so a
            # hostile archive is a 422 now rather than a compilation error later.
            try:
                extract_zip(archive) if archive else None
            except ArchiveError as e:
                errors.append(f"additional_files: {e}")
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
            errors.append(f"{where}: {refusal(lang)}")
        elif lang in disabled:
            errors.append(f"{where}: language with id {lang} is disabled (self-test failed)")
    for name, high in config.max_limits.items():
        value = getattr(sub, name)
        if isinstance(value, int | float) and value > high:
            errors.append(f"{name}: must be at most {high:g} on this server, got {value:g}")
    if sub.enable_network and not config.allow_network:
        errors.append("enable_network: not allowed on this server")
    info = languages.get(sub.language_id)
    if sub.compiler_options and info is not None and info.compile_cmd is None:
        errors.append("compiler_options: only allowed for compiled languages")
    too_many = runs_refused(sub, config.max_runs)
    if too_many is not None:
        errors.append(too_many)
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
