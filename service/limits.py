"""The checks before every request: wrong tokens counted per address, authentication, Judge0's
authorization for listing and deleting, and per-client rate limits (fixed windows in Redis)."""

from __future__ import annotations

import math
import time

from flask import Flask, Response, g, request

from service import auth, crosssite
from service.auth import Client
from service.core import Core, core
from service.errors import ApiError

# Open to everyone even when tokens are set: probes, scrapers and the docs.
EXEMPT = ("/metrics", "/api/v1/health", "/openapi.json", "/docs", "/")
# The playground's static files: public like the page, which asks for a token to submit.
EXEMPT_PREFIXES = ("/playground/",)
WINDOW_S = 60


def _protected(path: str) -> bool:
    """Judge0's authorize_request: listing submissions, deleting one, and /authorize."""
    if request.method == "DELETE":
        return True
    return (request.method, path) in (("GET", "/submissions"), ("POST", "/authorize"))


def check_request() -> None:
    """Failed attempts first (no oracle for a locked-out guesser), then authentication,
    authorization for what Judge0 protects, then the rate limit."""
    c = core()
    path = request.path.rstrip("/") or "/"
    if path in EXEMPT or request.path.startswith(EXEMPT_PREFIXES):
        return
    config, address = c.config, auth.address()
    token, user = auth.presented_token(), auth.presented_user()
    failures = _Window(c, f"authfail:{address}", config.auth_failures_per_minute)
    # Only a credential the server has some of can be a guess (a Judge0 client that sends
    # X-Auth-User to a server without AUTHZ tokens guesses nothing). From a locked-out
    # address such a request is refused before its credential is looked at, right or wrong.
    token_guess = bool(config.auth_tokens) and token is not None
    user_guess = bool(config.authz_tokens) and user is not None
    guessing = token_guess or user_guess
    if guessing and failures.count() >= failures.limit:
        raise _too_many(
            failures,
            f"too many wrong tokens from this address: at most {failures.limit} a minute "
            "(STOCKADE_AUTH_FAILURES_PER_MINUTE)",
        )
    owner = ""
    if config.auth_tokens:
        if not auth.matches(token, c.auth_digests):
            if token_guess:
                failures.hit()
            raise ApiError.field(401, "X-Auth-Token", "missing or not a valid token")
        owner = auth.digest(token or "")
    authz = auth.matches(user, c.authz_digests)
    if user_guess and not authz:
        failures.hit()
    if _protected(path) and not authz:
        rule = "missing or not authorized"
        if not config.authz_tokens:
            rule = "no STOCKADE_AUTHZ_TOKENS on this server: listing and deleting are off"
        raise ApiError.field(403, "X-Auth-User", rule)
    client = Client(owner, f"token:{owner}" if owner else f"addr:{address}", authz)
    auth.remember(client)
    if config.rate_limit_per_minute > 0:
        window = _Window(c, f"rate:{client.key}", config.rate_limit_per_minute)
        count = window.hit()
        g.stockade_rate = (window.limit, max(0, window.limit - count), window.reset_s())
        if count > window.limit:
            raise _too_many(
                window,
                f"rate limit: at most {window.limit} requests a minute per token "
                "(or client address without auth)",
            )


class _Window:
    """A counter in Redis for the current minute."""

    def __init__(self, c: Core, name: str, limit: int) -> None:
        self.now = time.time()
        self.key = f"{c.config.redis_prefix}{name}:{int(self.now) // WINDOW_S}"
        self.redis = c.store.redis
        self.limit = limit

    def count(self) -> int:
        return int(self.redis.get(self.key) or 0)

    def hit(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(self.key)
        pipe.expire(self.key, WINDOW_S * 2)
        return int(pipe.execute()[0])

    def reset_s(self) -> int:
        return max(1, math.ceil(WINDOW_S - self.now % WINDOW_S))


def _too_many(window: _Window, rule: str) -> ApiError:
    g.stockade_rate = (window.limit, 0, window.reset_s())
    return ApiError.message(429, rule)


def rate_headers(response: Response) -> Response:
    """X-RateLimit-Limit, -Remaining and -Reset (seconds) on every counted answer, and
    Retry-After on a 429."""
    rate = g.get("stockade_rate")
    if rate is not None:
        limit, remaining, reset = rate
        response.headers["X-RateLimit-Limit"] = str(limit)
        response.headers["X-RateLimit-Remaining"] = str(remaining)
        response.headers["X-RateLimit-Reset"] = str(reset)
        if response.status_code == 429:
            response.headers.setdefault("Retry-After", str(reset))
    return response


def install(app: Flask) -> None:
    app.before_request(crosssite.check_request)
    app.before_request(check_request)
    app.after_request(rate_headers)
