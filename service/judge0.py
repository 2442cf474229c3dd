"""Judge0 CE 1.13-compatible API at the root path: a Judge0 client only changes its base URL."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Response, jsonify, request

from service import submissions
from service.core import Core, core
from service.errors import ApiError
from service.judge0_params import (
    b64bytes,
    b64text,
    canonical_b64,
    cast,
    flag,
    judge0_errors,
    request_params,
)
from service.judge0_view import NOT_UTF8, NOT_UTF8_MANY, NotUtf8, parse_fields, render
from service.languages import JUDGE0_ALIASES, UNSERVED, listing, with_aliases
from worker.jobs.model import JUDGE0_STATUSES, Submission
from worker.jobs.store import NewSubmission, Record

bp = Blueprint("judge0", __name__)
_IGNORED = (
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
)
# `problem` is the native API's alone (it checks the package and its owner), and `assignment`
# the grading API's; Judge0 ignores both.
_KNOWN = set(Submission.__dataclass_fields__) - {"problem", "assignment", "source_base64"} | {
    "callback_url",
    *_IGNORED,
}


def _flag(name: str) -> bool:
    return flag(dict(request.args), name)


def _parse(data: Any, b64: bool, c: Core) -> tuple[Submission, str | None, dict[str, Any]]:
    """One Judge0 submission: cast as Rails casts it, base64 decoded, aliases resolved,
    validated; every broken rule in one 422, as Judge0's model errors."""
    if not isinstance(data, dict):
        raise ApiError.field(422, "submission", "must be a JSON object")
    body, errors = cast({k: v for k, v in data.items() if k in _KNOWN})  # unknown: ignored
    meta: dict[str, Any] = {"api": "judge0", "base64": b64}
    meta["per_process_time"] = bool(body.pop(_IGNORED[0], False))
    meta["per_process_memory"] = bool(body.pop(_IGNORED[1], False))
    if "additional_files" in body:
        body["additional_files"] = canonical_b64(body["additional_files"])
    if isinstance(body.get("language_id"), int):
        body["language_id"] = JUDGE0_ALIASES.get(body["language_id"], body["language_id"])
    info = c.languages.get(body.get("language_id"))  # type: ignore[arg-type]
    # Only a language whose source is the program (44) takes bytes that are not UTF-8.
    binary = (
        _binary_source(body.get("source_code")) if b64 and info and info.binary_source else None
    )
    if b64:
        for name in ("source_code", "stdin", "expected_output"):
            if name != "source_code" or binary is None:
                body[name] = b64text(name, body.get(name))
    if binary is not None:
        body["source_code"], body["source_base64"] = binary, True
    errors += judge0_errors(body)
    bad = {e.partition(":")[0] for e in errors}
    try:
        callback = submissions.check_callback_url(body.pop("callback_url", None), c.config)
        sub = c.parse(body)
    except ApiError as e:
        if not errors or e.status != 422:
            raise
        # The model's word on a field already refused above (a default it fell back on) is
        # noise; its word on the others belongs in the same answer.
        rest = [f"{k}: {r}" for k, rules in e.body.items() if k not in bad for r in rules]
        raise ApiError.fields(422, errors + rest) from None
    if errors:
        raise ApiError.fields(422, errors)
    return sub, callback, meta


def _binary_source(text: Any) -> str | None:
    """A base64 source whose bytes are not UTF-8 (a binary for language 44, Executable), as
    canonical base64 kept beside the flag source_base64; None for text, decoded as usual."""
    if not isinstance(text, str):
        return None
    try:
        data = b64bytes(text)
        data.decode()
    except UnicodeDecodeError:
        return base64.b64encode(data).decode()
    except (binascii.Error, ValueError):
        return None
    return None


def _not_found(c: Core) -> ApiError:
    """Judge0's answer to a token it does not have (Rails' RecordNotFound), with the why."""
    why = "expired or unknown"
    if c.config.owner_only_reads:
        why += ", or made with another token (STOCKADE_OWNER_ONLY_READS)"
    return ApiError(404, {"error": f"Not Found: no submission with this token ({why})"})


@bp.post("/submissions")
def create() -> tuple[Response, int, dict[str, str]]:
    c, params = core(), request_params()
    b64, wait = flag(params, "base64_encoded"), flag(params, "wait")
    if wait and not c.config.enable_wait_result:
        raise ApiError.message(400, "wait not allowed (STOCKADE_ENABLE_WAIT_RESULT is off)")
    fields = _fields(params)
    sub, callback, meta = _parse(params, b64, c)
    token = c.submit(sub, callback_url=callback, meta=meta)
    if not wait:
        return jsonify({"token": token}), 201, {}
    rec = c.wait(token)
    if rec is None:
        raise _not_found(c)
    try:
        out = render(rec, fields, b64, c.languages)
    except NotUtf8:
        return jsonify({"error": NOT_UTF8, "token": token}), 201, {}
    headers = {}
    if not rec.final:
        # Judge0 answers with the submission as it stands; say why it is not finished.
        limit = c.config.wait_timeout_s
        note = f"the wait ended after {limit:g} s (STOCKADE_WAIT_TIMEOUT_S) before a result"
        headers["X-Stockade-Wait"] = note
        if "message" in out and out["message"] is None:
            out["message"] = base64.b64encode(note.encode()).decode() if b64 else note
    return jsonify(out), 201, headers


def _fields(params: dict[str, Any]) -> tuple[str, ...]:
    value = params.get("fields")
    return parse_fields(value if isinstance(value, str) else None)


@bp.get("/submissions/<token>")
def show(token: str) -> Response:
    c = core()
    fields = _fields(dict(request.args))
    rec = c.read(token)
    if rec is None:
        raise _not_found(c)
    return jsonify(render(rec, fields, _flag("base64_encoded"), c.languages))


@bp.get("/submissions")
def index() -> Response:
    """Every stored submission: only with an X-Auth-User token (limits.check_request)."""
    c = core()
    page, per_page = _int_arg("page", 1, 1, 10**9), _int_arg("per_page", 20, 1, 100)
    fields = _fields(dict(request.args))
    tokens, total = c.store.tokens(page, per_page)
    records = [r for r in c.store.get_many(tokens) if r is not None]
    pages = math.ceil(total / per_page)
    b64 = _flag("base64_encoded")
    return jsonify(
        {
            "submissions": _render_all(records, fields, b64, c),
            "meta": {
                "current_page": page,
                "next_page": page + 1 if page < pages else None,
                "prev_page": page - 1 if page > 1 else None,
                "total_pages": pages,
                "total_count": total,
            },
        }
    )


@bp.delete("/submissions/<token>")
def destroy(token: str) -> Response:
    """Judge0's rules: an X-Auth-User token (limits.check_request), deleting switched on,
    and only a finished submission (a queued one is some client's pending work)."""
    c = core()
    c.check_deletable()
    fields = _fields(dict(request.args))
    rec = c.store.get(token)
    if rec is None:
        raise _not_found(c)
    if not rec.final:
        status = JUDGE0_STATUSES[rec.status_id]
        raise ApiError.message(
            400,
            f"submission cannot be deleted because its status is {rec.status_id} ({status})",
        )
    c.store.delete(token)
    # Judge0 answers a deletion in base64 whatever was asked: text that is not UTF-8 still
    # reaches the client, whose last chance it is.
    return jsonify(render(rec, fields, True, c.languages))


def _batch_size(n: int, c: Core) -> None:
    """Judge0's two refusals of a batch's size, both 400 {"error": ...}."""
    cap = c.config.max_batch_size
    if n > cap:
        raise ApiError.message(
            400, f"number of submissions in a batch should be less than or equal to {cap}"
        )
    if n == 0:
        raise ApiError.message(400, "there should be at least one submission in a batch")


@bp.post("/submissions/batch")
def create_batch() -> tuple[Response, int]:
    c, params = core(), request_params()
    b64 = flag(params, "base64_encoded")
    items = params.get("submissions")
    if items is not None and not isinstance(items, list):
        raise ApiError.field(422, "submissions", "must be a list of submissions")
    _batch_size(len(items or []), c)
    parsed: list[tuple[Submission, str | None, dict[str, Any]] | dict[str, Any]] = []
    for item in items or []:
        try:
            parsed.append(_parse(item, b64, c))
        except ApiError as e:
            if e.status >= 500:
                raise
            parsed.append(e.body)
    valid = [NewSubmission(*p) for p in parsed if isinstance(p, tuple)]
    tokens = iter(c.submit_many(valid) if valid else [])
    out = [{"token": next(tokens)} if isinstance(p, tuple) else p for p in parsed]
    # Judge0: 201 when one item or more was made, 422 when none was.
    return jsonify(out), 201 if valid else 422


@bp.get("/submissions/batch")
def show_batch() -> Response:
    c = core()
    tokens = [t.strip() for t in request.args.get("tokens", "").split(",") if t.strip()]
    _batch_size(len(tokens), c)
    fields = _fields(dict(request.args))
    b64 = _flag("base64_encoded")
    records = c.read_many(tokens)
    return jsonify({"submissions": _render_all(records, fields, b64, c)})


def _render_all(
    records: Sequence[Record | None], fields: tuple[str, ...], b64: bool, c: Core
) -> list[dict[str, Any] | None]:
    try:
        return [render(r, fields, b64, c.languages) if r else None for r in records]
    except NotUtf8:
        raise ApiError.message(400, NOT_UTF8_MANY) from None


@bp.get("/languages")
def languages() -> Response:
    c = core()
    return jsonify(listing(c.languages, c.disabled(), archived=False))


@bp.get("/languages/all")
def languages_all() -> Response:
    c = core()
    return jsonify(listing(c.languages, c.disabled(), archived=True))


@bp.get("/languages/<int:language_id>")
def language(language_id: int) -> Response:
    c = core()
    lang = with_aliases(c.languages).get(language_id)
    unserved = UNSERVED.get(language_id)
    if lang is None and unserved is not None:
        # Judge0 shows an archived language; this one has no toolchain here, so no commands.
        name, why = unserved
        none = {"source_file": None, "compile_cmd": None, "run_cmd": None}
        return jsonify(
            {"id": language_id, "name": name, "is_archived": True, **none, "reason": why}
        )
    if lang is None:
        raise ApiError.field(404, "id", f"language with id {language_id} doesn't exist")
    return jsonify(
        {
            "id": language_id,
            "name": lang.name,
            "is_archived": lang.id in c.disabled(),
            "source_file": lang.source_file,
            "compile_cmd": lang.compile_cmd,
            "run_cmd": lang.run_cmd,
        }
    )


@bp.post("/authenticate")
def authenticate() -> Response:
    """200 once limits.check_request has accepted the X-Auth-Token (401 before, if not)."""
    return Response(status=200)


@bp.post("/authorize")
def authorize() -> Response:
    """200 once limits.check_request has accepted the X-Auth-User (403 before, if not)."""
    return Response(status=200)


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    """A paging number; Judge0's 400 {"error": "invalid page: 0"} when it is out of range."""
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError.message(400, f"invalid {name}: {text} (an integer)") from None
    if not low <= value <= high:
        raise ApiError.message(400, f"invalid {name}: {value} (from {low} to {high})")
    return value
