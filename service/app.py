"""create_app(): the Flask app factory; the config is read once, here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from service import cors, languages, limits
from service.config import Config
from service.core import Core
from service.errors import ApiError

_DRAIN_MAX_BYTES = 256 * 1024 * 1024  # a larger body is cut off, not read


# Redis's reply prefixes for "up, but cannot take this write now".
_REFUSALS = ("MISCONF", "READONLY", "OOM ", "LOADING", "NOREPLICAS", "MASTERDOWN")


def create_app(test_config: Config | Mapping[str, Any] | None = None) -> Flask:
    """The whole service. `test_config`: a Config, or field overrides on the environment's."""
    if isinstance(test_config, Config):
        config = test_config
    else:
        config = Config.from_env().replace(**dict(test_config or {}))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    # A multipart field (a Judge0 form's source_code) may be as large as a body: Flask's
    # default of 500 kB would cut under the source cap.
    app.config["MAX_FORM_MEMORY_SIZE"] = config.max_body_bytes
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False  # Judge0's field order, not the alphabet
    app.url_map.strict_slashes = False  # Judge0 clients add trailing slashes
    if config.trusted_proxies:
        # The last N hops of X-Forwarded-For/-Proto/-Host are the proxies' own word; the
        # client's address is then the one they saw. With 0, no such header is believed.
        n = config.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    app.extensions["stockade"] = Core.build(config, languages.load())

    from service import (
        assignments,
        judge0,
        judge0_info,
        metrics,
        native,
        openapi,
        piston,
        playground,
    )

    app.register_blueprint(judge0.bp)
    app.register_blueprint(judge0_info.bp)
    app.register_blueprint(native.bp)
    app.register_blueprint(assignments.bp)
    app.register_blueprint(piston.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(playground.bp)
    limits.install(app)
    cors.install(app)

    def refuse_large_bodies() -> tuple[Response, int] | None:
        # Answer 413 only after reading what the client sent (up to a bound): a server that
        # replies and closes with the body unread makes most clients see a reset, not a 413.
        length = request.content_length
        if length is None or length <= config.max_body_bytes:
            return None
        stream, left = request.environ["wsgi.input"], min(length, _DRAIN_MAX_BYTES)
        while left > 0:
            chunk = stream.read(min(left, 1 << 16))
            if not chunk:
                break
            left -= len(chunk)
        return jsonify({"body": [f"must be at most {config.max_body_bytes} bytes"]}), 413

    # First of all before-request hooks: the auth and rate-limit ones must not touch the body.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_large_bodies)

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    def store_unavailable(e: Exception) -> tuple[Response, int]:
        # Redis away (restarted, failing over): the client may retry; this is not its fault
        # and not ours to hide behind a 500.
        return jsonify({"error": f"the store is unavailable, try again: {e}"}), 503

    @app.errorhandler(redis.exceptions.ResponseError)
    def store_refuses(e: redis.exceptions.ResponseError) -> tuple[Response, int]:
        # Redis up but refusing writes: its disk is full (MISCONF), it is a replica
        # (READONLY), at maxmemory (OOM), loading its AOF (LOADING), short of the replicas
        # min-replicas-to-write asks for (NOREPLICAS) or a replica cut off from its primary
        # (MASTERDOWN). Nothing was stored;
        # the client may retry. Any other reply error is our bug: a 500.
        # redis-py turns the OOM and READONLY replies into classes of their own, their code
        # word dropped from the text.
        refused = (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError)
        if isinstance(e, refused) or any(tag in str(e) for tag in _REFUSALS):
            return jsonify({"error": f"the store refuses writes for now, try again: {e}"}), 503
        raise e

    @app.errorhandler(ApiError)
    def api_error(e: ApiError) -> tuple[Response, int, dict[str, str]]:
        return jsonify(e.body), e.status, e.headers

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> tuple[Response, int]:
        if e.code == 413:
            cap = config.max_body_bytes
            return jsonify({"body": [f"must be at most {cap} bytes"]}), 413
        return jsonify({"error": e.description or e.name}), e.code or 500

    return app
