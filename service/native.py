"""The native API under /api/v1: one program, test cases, checker, limits, isolation tier."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from service import auth, submissions
from service.core import Core, core
from service.errors import ApiError, read_object
from service.judge0_view import iso
from service.uploads import zip_field
from worker.jobs.archives import ArchiveError
from worker.jobs.model import JUDGE0_STATUSES, Submission
from worker.jobs.packages.format import ProblemError
from worker.jobs.problems import DIGEST, ProblemStore, check, digest, unpack
from worker.jobs.store import NewSubmission, Record

bp = Blueprint("native", __name__, url_prefix="/api/v1")


def _flag(name: str) -> bool:
    return request.args.get(name, "").lower() in ("true", "1", "yes")


def parse(data: Any, c: Core) -> tuple[Submission, str | None, dict[str, Any]]:
    """A native body: the Submission's own fields (tier among them) plus language (key) and
    callback_url. `isolation` is the older name of `tier`."""
    if not isinstance(data, dict):
        raise ApiError.field(422, "submission", "must be a JSON object")
    body = dict(data)
    if "isolation" in body:
        legacy = body.pop("isolation")
        body.setdefault("tier", legacy)
    key = body.pop("language", None)
    if key is not None:
        ids = [lang.id for lang in c.languages.values() if lang.key == key]
        if not ids:
            raise ApiError.field(422, "language", f"unknown language {key!r}")
        body["language_id"] = ids[0]
    callback = submissions.check_callback_url(body.pop("callback_url", None), c.config)
    sub = c.parse(body)
    if sub.problem:
        _check_problem(c, sub)
    return sub, callback, {"api": "native"}


def _problems(c: Core) -> ProblemStore:
    return ProblemStore(c.store.redis, c.config.redis_prefix, c.config.problem_ttl_s)


def _problem(c: Core, problem: str, field: str) -> dict[str, Any]:
    """The package's summary if this client may use it; 404 naming the rules otherwise."""
    store = _problems(c)
    info = store.summary(problem) if DIGEST.match(problem) else None
    client = auth.current()
    owner_only = info is not None and c.config.owner_only_reads and not client.authz
    if owner_only and not store.owned_by(problem, client.owner):
        info = None
    if info is None:
        why = "expired or unknown"
        if c.config.owner_only_reads:
            why += ", or uploaded with another token (STOCKADE_OWNER_ONLY_READS)"
        raise ApiError.field(
            404 if field == "id" else 422, field, f"no problem with this id ({why})"
        )
    return info


def _check_problem(c: Core, sub: Submission) -> None:
    """The package exists for this client, allows the language and fits the runs budget;
    it then stays a TTL longer, so that the worker still finds it."""
    info = _problem(c, sub.problem, "problem")
    lang = c.languages.get(sub.language_id)
    allowed = info.get("languages") or []
    if allowed and (lang is None or lang.key not in allowed):
        rule = f"the problem allows only {', '.join(allowed)}"
        raise ApiError.field(422, "language_id", rule)
    if info["cases"] > c.config.max_runs:
        rule = (
            f"the problem has {info['cases']} cases; a submission may run at most "
            f"{c.config.max_runs} (STOCKADE_MAX_RUNS_PER_SUBMISSION)"
        )
        raise ApiError.field(422, "problem", rule)
    _problems(c).touch(sub.problem)


def view(rec: Record) -> dict[str, Any]:
    res = rec.result or {}
    return {
        "id": rec.token,
        "status": {"id": rec.status_id, "description": JUDGE0_STATUSES[rec.status_id]},
        "final": rec.final,
        "verdict": res.get("verdict"),
        "score": res.get("score"),
        "max_score": res.get("max_score"),
        "time_s": res.get("time"),
        "memory_bytes": res.get("memory"),
        "compile_output": res.get("compile_output"),
        "message": rec.message or res.get("message") or "",
        "cases": res.get("cases", []),
        "groups": res.get("groups", []),
        "problem": rec.submission.problem or None,
        "language_id": rec.submission.language_id,
        "tier": rec.submission.tier or rec.meta.get("isolation", "container"),
        "attempts": rec.attempts,
        "created_at": iso(rec.created_at),
        "started_at": iso(rec.started_at),
        "finished_at": iso(rec.finished_at),
    }


def _get(c: Core, token: str) -> Record:
    """The record if this client may read it; 404 naming the rules otherwise."""
    rec = c.read(token)
    if rec is None:
        why = "expired or unknown"
        if c.config.owner_only_reads:
            why += ", or made with another token (STOCKADE_OWNER_ONLY_READS)"
        raise ApiError.field(404, "id", f"no submission with this id ({why})")
    return rec


@bp.post("/submissions")
def create() -> tuple[Response, int]:
    c = core()
    sub, callback, meta = parse(read_object(), c)
    token = c.submit(sub, callback_url=callback, meta=meta)
    if not _flag("wait"):
        return jsonify({"id": token}), 201
    rec = c.wait(token)
    return jsonify(view(rec) if rec else {"id": token}), 201


@bp.get("/submissions/<token>")
def show(token: str) -> Response:
    c = core()
    rec = _get(c, token)  # first: a client may wait only on what it may read
    if _flag("wait") and not rec.final:
        rec = c.wait(token) or rec
    return jsonify(view(rec))


@bp.delete("/submissions/<token>")
def destroy(token: str) -> Response:
    """Judge0's rules here too: an X-Auth-User token, deleting switched on, finished only."""
    c = core()
    c.check_deletable()
    rec = c.store.get(token)
    if rec is None:
        raise ApiError.field(404, "id", "no submission with this id (expired or unknown)")
    if not rec.final:
        status = JUDGE0_STATUSES[rec.status_id]
        raise ApiError.field(400, "id", f"cannot delete a submission while {status}")
    c.store.delete(token)
    return jsonify({"id": token, "deleted": True})


@bp.post("/submissions/batch")
def create_batch() -> tuple[Response, int]:
    c = core()
    items = c.batch_items(read_object())
    parsed = []
    for i, item in enumerate(items):
        try:
            parsed.append(parse(item, c))
        except ApiError as e:  # all or nothing: name the item and its field
            raise ApiError(
                e.status, {f"submissions[{i}].{k}": v for k, v in e.body.items()}
            ) from None
    ids = c.submit_many([NewSubmission(*p) for p in parsed])
    return jsonify({"ids": ids}), 201


@bp.get("/submissions/batch")
def show_batch() -> Response:
    c = core()
    ids = [t.strip() for t in request.args.get("ids", "").split(",") if t.strip()]
    if not ids or len(ids) > c.config.max_batch_size:
        raise ApiError.field(
            400, "ids", f"must list 1 to {c.config.max_batch_size} comma-separated ids"
        )
    return jsonify({"submissions": [view(r) if r else None for r in c.read_many(ids)]})


@bp.post("/problems")
def upload_problem() -> tuple[Response, int]:
    """A problem package (base64 of a zip): checked as an archive, then read by the
    package loader on an extracted copy; stored under its digest, which is its id."""
    c = core()
    body = read_object()
    unknown = sorted(set(body) - {"package"})
    if unknown:
        raise ApiError.field(422, unknown[0], "unknown field (a problem takes only package)")
    cap = c.config.max_package_bytes
    data = zip_field(body, "package", cap)
    try:
        files = unpack(data, cap)
        info = check(files, c.config.package_max_memory_mib)
    except (ArchiveError, ProblemError) as e:
        raise ApiError.field(422, "package", str(e)) from None
    problem, client, cap = digest(files), auth.current(), c.config.max_problems_per_client
    new = _problems(c).put(problem, data, info, client.owner, client.key, cap)
    if new is None:
        rule = (
            f"this client has uploaded {cap} problems within STOCKADE_PROBLEM_TTL_S and may "
            f"keep at most {cap} (STOCKADE_MAX_PROBLEMS_PER_CLIENT)"
        )
        raise ApiError.field(429, "package", rule)
    return jsonify({"id": problem, **_problem(c, problem, "id")}), 201 if new else 200


@bp.get("/problems/<problem>")
def show_problem(problem: str) -> Response:
    c = core()
    return jsonify({"id": problem, **_problem(c, problem, "id")})


@bp.get("/languages")
def languages() -> Response:
    c = core()
    disabled = c.disabled()
    return jsonify(
        [
            {
                "id": lang.id,
                "key": lang.key,
                "name": lang.name,
                "version": lang.version,
                "compiled": lang.compile_cmd is not None,
                "enabled": lang.id not in disabled,
            }
            for lang in c.languages.values()
        ]
    )


@bp.get("/health")
def health() -> tuple[Response, int]:
    c = core()
    try:
        c.store.redis.ping()
        depth = c.store.queue_depth()
    except Exception as e:  # Redis down: the service cannot accept work
        return jsonify({"status": "unavailable", "redis": str(e)}), 503
    body = {"status": "ok", "queue_depth": depth, "workers": len(c.workers()), "tiers": c.tiers()}
    return jsonify(body), 200
