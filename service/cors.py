"""CORS as Judge0 configures rack-cors: every origin unless STOCKADE_ALLOW_ORIGIN names some or
STOCKADE_DISALLOW_ORIGIN refuses some; every method and header; never credentials (the API's
credentials are tokens a page must hold, not cookies a browser adds)."""

from __future__ import annotations

import re

from flask import Flask, Response, request

from service.config import Config
from service.core import core

METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS, HEAD"
MAX_AGE_S = 7200  # rack-cors' default
_SCHEME = re.compile(r"^[a-z][a-z0-9.+-]*://", re.IGNORECASE)


def allowed(origin: str, config: Config) -> bool:
    """Judge0's rule: a DISALLOW_ORIGIN word anywhere in the Origin refuses it (unless ALLOW
    names it too); an ALLOW_ORIGIN word is a whole origin, or a host under any scheme."""
    allow, disallow = config.allow_origin, config.disallow_origin
    if any(word in origin for word in disallow if word not in allow):
        return False
    if not allow:
        return True
    return any(_names(word, origin) for word in allow)


def _names(word: str, origin: str) -> bool:
    if word == "*":
        return True
    if _SCHEME.match(word):
        return word.lower() == origin.lower()
    scheme = _SCHEME.match(origin)
    return scheme is not None and origin[scheme.end() :].lower() == word.lower()


def explicitly_allowed(origin: str, config: Config) -> bool:
    """An origin the operator named in STOCKADE_ALLOW_ORIGIN (not through "*" or an empty
    list): crosssite lets it through with auth off, as a page the operator trusts."""
    words = [w for w in config.allow_origin if w != "*"]
    return bool(words) and any(_names(w, origin) for w in words) and allowed(origin, config)


def _public(config: Config) -> bool:
    return not config.disallow_origin and (not config.allow_origin or "*" in config.allow_origin)


def preflight() -> Response | None:
    """An OPTIONS preflight is answered here, before tokens are asked for: a browser sends
    none with it. A refused origin gets the answer without CORS headers (the browser stops)."""
    origin = request.headers.get("Origin")
    wanted = request.headers.get("Access-Control-Request-Method")
    if request.method != "OPTIONS" or origin is None or wanted is None:
        return None
    response = Response(status=200)
    config = core().config
    if allowed(origin, config):
        _allow(response, origin, config)
        response.headers["Access-Control-Allow-Methods"] = METHODS
        asked = request.headers.get("Access-Control-Request-Headers")
        if asked:
            response.headers["Access-Control-Allow-Headers"] = asked
        response.headers["Access-Control-Max-Age"] = str(MAX_AGE_S)
    return response


def _allow(response: Response, origin: str, config: Config) -> None:
    if _public(config):
        response.headers["Access-Control-Allow-Origin"] = "*"
    else:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.vary.add("Origin")


def add_headers(response: Response) -> Response:
    origin = request.headers.get("Origin")
    if origin is not None and "Access-Control-Allow-Origin" not in response.headers:
        config = core().config
        if allowed(origin, config):
            _allow(response, origin, config)
    return response


def install(app: Flask) -> None:
    """Before every other check but the body cap (a preflight has no body), and on every
    answer, refusals included, so a page can read why it was refused."""
    app.before_request_funcs.setdefault(None, []).insert(0, preflight)
    app.after_request(add_headers)
