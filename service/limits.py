"""Abuse limits: auth tokens, per-token rate limits (fixed window in Redis), size caps."""

from __future__ import annotations

import time

from flask import Flask, request

from service.core import core
from service.errors import ApiError

# Open to everyone even when tokens are set: probes, scrapers and the docs.
EXEMPT = ("/metrics", "/api/v1/health", "/openapi.json", "/docs", "/authenticate", "/")
# The playground's static files: public like the page, which asks for a token to submit.
EXEMPT_PREFIXES = ("/playground/",)
AUTHZ = ("DELETE",)
WINDOW_S = 60


def client_token() -> str | None:
    token = request.headers.get("X-Auth-Token")
    if token:
        return token
    auth = request.headers.get("Authorization", "")
    return auth.removeprefix("Bearer ").strip() or None if auth.startswith("Bearer ") else None


def check_request() -> None:
    """Authentication, then authorization for destructive calls, then the rate limit."""
    c = core()
    path = request.path.rstrip("/") or "/"
    if path in EXEMPT or request.path.startswith(EXEMPT_PREFIXES):
        return
    token = client_token()
    if c.config.auth_tokens and token not in c.config.auth_tokens:
        raise ApiError.field(401, "X-Auth-Token", "missing or not a valid token")
    listing = request.method == "GET" and path == "/submissions"
    authz = c.config.authz_tokens
    if (
        authz
        and (request.method in AUTHZ or listing)
        and request.headers.get("X-Auth-User") not in authz
    ):
        raise ApiError.field(403, "X-Auth-User", "missing or not authorized")
    limit = c.config.rate_limit_per_minute
    if limit > 0:
        who = token or request.remote_addr or "unknown"
        window = int(time.time()) // WINDOW_S
        key = f"{c.config.redis_prefix}rate:{who}:{window}"
        pipe = c.store.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, WINDOW_S * 2)
        count = int(pipe.execute()[0])
        if count > limit:
            raise ApiError(
                429, {"error": f"rate limit: at most {limit} requests a minute per token"}
            )


def install(app: Flask) -> None:
    app.before_request(check_request)
