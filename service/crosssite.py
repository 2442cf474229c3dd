"""With auth off, refuse what a web page elsewhere could make a browser send: bodies of the
types a form or `fetch` sends without asking the server first, and requests whose Host or
Origin is not this server's (a page reaching 127.0.0.1 by DNS rebinding)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request

from service import cors
from service.core import core
from service.errors import ApiError

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
# Read-only answers that probes fetch by the pod's address (Kubernetes' httpGet sends it as
# the Host): no submission, no secret.
PROBES = ("/metrics", "/api/v1/health", "/openapi.json")
_BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# Query parameters that shape an answer or name a credential; any other, on a POST, may carry
# what a body does.
_VIEW_PARAMS = ("base64_encoded", "wait", "fields", "tokens", "page", "per_page", "X-Auth-Token",
                "X-Auth-User")  # fmt: skip


def hostname(netloc: str) -> str | None:
    """`netloc`'s host, lowercased, without port or IPv6 brackets; None if it has none."""
    try:
        return urlsplit(f"//{netloc}").hostname
    except ValueError:  # a bracket left open, a port that is not a number
        return None


def check_request() -> None:
    config = core().config
    if config.auth_tokens:
        return  # a page elsewhere cannot send a token it does not have
    if (request.path.rstrip("/") or "/") in PROBES:
        return
    allowed = (*LOCAL_HOSTS, *(h.lower() for h in config.allowed_hosts))
    if hostname(request.host) not in allowed:
        raise ApiError.field(
            403,
            "Host",
            f"must be one of {', '.join(allowed)} while auth is off (STOCKADE_ALLOWED_HOSTS "
            "adds names): another name may be a page's DNS rebinding to this server",
        )
    origin = request.headers.get("Origin")
    own = origin is None or urlsplit(origin).netloc.lower() == request.host.lower()
    # CORS's "every origin" (Judge0's default) reaches only requests that carry a token; a
    # page the operator named in STOCKADE_ALLOW_ORIGIN is trusted without one.
    if not own and not cors.explicitly_allowed(origin or "", config):
        raise ApiError.field(
            403,
            "Origin",
            "must be this server's own, or named in STOCKADE_ALLOW_ORIGIN, while auth is off "
            "(a cross-site request)",
        )
    has_body = bool(request.content_length) or "Transfer-Encoding" in request.headers
    # Judge0 reads a submission's attributes from the query string too: a form could send
    # them in its action URL with an empty body.
    has_body |= any(name not in _VIEW_PARAMS for name in request.args)
    if request.method in _BODY_METHODS and has_body and not _json(request.mimetype):
        raise ApiError.field(
            415,
            "Content-Type",
            "must be application/json while auth is off: a page elsewhere can send "
            f"{request.mimetype or 'a body without one'} here without the browser asking first",
        )


def _json(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")
