"""Grading through the API under /api/v1/assignments: upload, describe, publish, grade, read."""

from __future__ import annotations

import base64
import binascii
import io
import time
import zipfile
from typing import Any

from flask import Blueprint, Response, jsonify, request

from service import auth, submissions
from service.core import Core, core
from service.errors import ApiError, read_object
from service.judge0_view import iso
from service.uploads import zip_field
from worker.jobs.assignments import (
    DIGEST,
    AssignmentStore,
    Audience,
    UploadError,
    check,
    digest,
    shown_results,
    shown_summary,
    submission_files,
    unpack,
)
from worker.jobs.model import Submission
from worker.jobs.store import IN_QUEUE, PROCESSING, Record

bp = Blueprint("assignments", __name__, url_prefix="/api/v1/assignments")
GRADED = 3  # the record's status when the worker graded it (worker.grading.uploaded)
ENCODINGS = ("utf-8", "base64")


def _flag(name: str) -> bool:
    return request.args.get(name, "").lower() in ("true", "1", "yes")


def _store(c: Core) -> AssignmentStore:
    return AssignmentStore(c.store.redis, c.config.redis_prefix, c.config.problem_ttl_s)


def _summary(c: Core, assignment: str) -> dict[str, Any]:
    """The assignment's summary; 404 when the id is unknown or expired. Any client holding
    the id may see it and submit (students are handed the id); staff rights are _audience's."""
    info = _store(c).summary(assignment) if DIGEST.match(assignment) else None
    if info is None:
        rule = "no assignment with this id (expired, STOCKADE_PROBLEM_TTL_S, or unknown)"
        raise ApiError.field(404, "id", rule)
    return info


def _audience(c: Core, assignment: str, info: dict[str, Any]) -> Audience:
    """Staff: a token that uploaded the assignment, or an X-Auth-User token. Everyone else is
    student-facing (with auth off nobody has an owner, so only X-Auth-User is staff)."""
    client, store = auth.current(), _store(c)
    staff = client.authz or (bool(client.owner) and store.owned_by(assignment, client.owner))
    return Audience(
        staff=staff,
        due_date=str(info.get("due_date") or ""),
        published=store.published(assignment),
        now=time.time(),
    )


@bp.post("")
def upload() -> tuple[Response, int]:
    """A native assignment or a Gradescope bundle (base64 of a zip, a bundle with its base
    `image`), checked as every archive is and by the grading loader; stored under its digest
    (of the files, due date and image), which is its id. Setup runs on the worker."""
    c = core()
    body = read_object()
    unknown = sorted(set(body) - {"assignment", "due_date", "image"})
    if unknown:
        rule = "unknown field (an upload takes assignment, due_date and image)"
        raise ApiError.field(422, unknown[0], rule)
    cap = c.config.max_package_bytes
    data = zip_field(body, "assignment", cap)
    keys = {lang.key for lang in c.languages.values()}
    try:
        files = unpack(data, cap)
        info = check(files, body.get("due_date"), keys, body.get("image"))
    except UploadError as e:
        raise ApiError.field(422, e.field, e.rule) from None
    assignment, client = digest(files, info["due_date"], info.get("image", "")), auth.current()
    most = c.config.max_problems_per_client
    new = _store(c).put(assignment, data, info, client.owner, client.key, most)
    if new is None:
        rule = (
            f"this client has uploaded {most} assignments within STOCKADE_PROBLEM_TTL_S and "
            f"may keep at most {most} (STOCKADE_MAX_PROBLEMS_PER_CLIENT)"
        )
        raise ApiError.field(429, "assignment", rule)
    return jsonify(_described(c, assignment)), 201 if new else 200


def _described(c: Core, assignment: str) -> dict[str, Any]:
    info = _summary(c, assignment)
    who = _audience(c, assignment, info)
    return {"id": assignment, **shown_summary(info, who), "published": who.published}


@bp.get("/<assignment>")
def show(assignment: str) -> Response:
    return jsonify(_described(core(), assignment))


@bp.post("/<assignment>/publish")
def publish(assignment: str) -> Response:
    """The after_published tests become visible to students; only staff may publish."""
    c = core()
    info = _summary(c, assignment)
    if not _audience(c, assignment, info).staff:
        rule = "only a token that uploaded the assignment, or an X-Auth-User token, may publish"
        raise ApiError.field(403, "id", rule)
    _store(c).publish(assignment)
    return jsonify(_described(c, assignment))


def files_zip(body: dict[str, Any]) -> bytes:
    """The submission's files as a zip: `zip` (base64) as sent, or `files` zipped here; either
    way extracted with every archive check before it is queued."""
    if ("files" in body) == ("zip" in body):
        raise ApiError.field(422, "files", "give files (a list) or zip (base64), not both")
    if "zip" in body:
        text = body["zip"]
        if not isinstance(text, str):
            raise ApiError.field(422, "zip", "must be a base64 string of a zip")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError.field(422, "zip", "must be valid base64 (of a zip)") from None
        where = "zip"
    else:
        data, where = _zipped(body["files"]), "files"
    try:
        submission_files(data)
    except UploadError as e:
        raise ApiError.field(422, where, e.rule) from None
    return data


def _zipped(items: Any) -> bytes:
    if not isinstance(items, list) or not items:
        raise ApiError.field(422, "files", "must be a non-empty list of {name, content}")
    buf, seen = io.BytesIO(), set()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, item in enumerate(items):
            at = f"files[{i}]"
            if not isinstance(item, dict) or set(item) - {"name", "content", "encoding"}:
                raise ApiError.field(422, at, "must be an object of name, content[, encoding]")
            name, content = item.get("name"), item.get("content")
            encoding = item.get("encoding", "utf-8")
            if not isinstance(name, str) or not name or name in seen:
                raise ApiError.field(422, f"{at}.name", "must be a file name, once in the list")
            if not isinstance(content, str):
                raise ApiError.field(422, f"{at}.content", "must be a string")
            if encoding not in ENCODINGS:
                rule = f"must be one of {', '.join(ENCODINGS)}"
                raise ApiError.field(422, f"{at}.encoding", rule)
            try:
                raw = (
                    base64.b64decode(content, validate=True)
                    if encoding == "base64"
                    else content.encode()
                )
            except (binascii.Error, ValueError):
                raise ApiError.field(422, f"{at}.content", "must be valid base64") from None
            seen.add(name)
            zf.writestr(name, raw)
    return buf.getvalue()


@bp.post("/<assignment>/submissions")
def grade(assignment: str) -> tuple[Response, int]:
    """Queued to the workers as every job is; with wait=true, answered when graded."""
    c = core()
    info = _summary(c, assignment)
    if c.config.min_tier not in ("", "container"):
        rule = (
            "grading runs in the container tier, below this server's STOCKADE_MIN_TIER "
            f"({c.config.min_tier})"
        )
        raise ApiError.field(422, "assignment", rule)
    body = read_object()
    unknown = sorted(set(body) - {"files", "zip", "callback_url"})
    if unknown:
        rule = "unknown field (a graded submission takes files or zip, and callback_url)"
        raise ApiError.field(422, unknown[0], rule)
    callback = submissions.check_callback_url(body.get("callback_url"), c.config)
    data = files_zip(body)
    sub = Submission(assignment=assignment, additional_files=base64.b64encode(data).decode())
    _store(c).touch(assignment)
    token = c.submit(sub, callback_url=callback, meta={"api": "grading"})
    if not _flag("wait"):
        return jsonify({"id": token, "assignment": assignment}), 201
    rec = c.wait(token)
    if rec is None:
        return jsonify({"id": token, "assignment": assignment}), 201
    return jsonify(view(rec, _audience(c, assignment, info))), 201


@bp.get("/<assignment>/submissions/<token>")
def result(assignment: str, token: str) -> Response:
    c = core()
    info = _summary(c, assignment)
    who = _audience(c, assignment, info)
    rec = c.read(token, graded=True)
    # Staff read every submission of their assignment, whoever made it.
    if rec is None and who.staff:
        rec = c.store.get(token)
    if rec is None or rec.submission.assignment != assignment:
        why = "expired or unknown, or not of this assignment"
        if c.config.owner_only_reads:
            why += ", or made with another token (STOCKADE_OWNER_ONLY_READS)"
        raise ApiError.field(404, "token", f"no graded submission with this id ({why})")
    if _flag("wait") and not rec.final:
        rec = c.wait(token) or rec
    return jsonify(view(rec, who))


def view(rec: Record, who: Audience) -> dict[str, Any]:
    """The record and, once graded, its results.json as `who` may see it."""
    status = {IN_QUEUE: "queued", PROCESSING: "grading", GRADED: "graded"}
    results = None
    # A job that failed outside the grader (run_job's internal error) has no results.json.
    if rec.final and rec.result and "score" in rec.result:
        raw = {k: v for k, v in rec.result.items() if k not in ("timings", "attempts")}
        results = shown_results(raw, who)
    return {
        "id": rec.token,
        "assignment": rec.submission.assignment,
        "status": status.get(rec.status_id, "not graded"),
        "final": rec.final,
        "message": rec.message,
        "results": results,
        "created_at": iso(rec.created_at),
        "finished_at": iso(rec.finished_at),
    }
