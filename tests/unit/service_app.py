"""Fixtures for the service tests: the app on a private Redis, a client, and the worker's side."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service import create_app
from service.config import Config
from worker.jobs.store import Store

HELLO = {"source_code": "print('hi')", "language_id": 71}


@pytest.fixture
def settings(redis_url: str) -> dict[str, Any]:
    """Overrides of the Config; a test may change them before asking for `app`."""
    return {"redis_url": redis_url, "redis_prefix": "t:", "wait_timeout_s": 2.0}


@pytest.fixture
def app(settings: dict[str, Any]) -> Flask:
    return create_app(Config().replace(**settings))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def store(app: Flask) -> Store:
    s: Store = app.extensions["stockade"].store
    return s


def queued_tokens(store: Store) -> list[str]:
    """The tokens of the judge tasks Celery pushed on the "stockade" list, oldest first."""
    out = []
    for raw in reversed(store.redis.lrange("stockade", 0, -1)):
        message = json.loads(raw)
        assert message["headers"]["task"] == "stockade.judge"
        out.append(message["headers"]["argsrepr"].strip("[]()',\""))
    return out


def ok_result(stdout: str = "hi\n", verdict: str = "AC", status: int = 3) -> dict[str, Any]:
    """What the worker stores: a JudgeResult.to_dict() of one case."""
    case = {"name": "1", "verdict": verdict, "time": 0.012, "memory": 9 * 1024 * 1024,
            "points": 1.0, "message": "", "exit_code": 0, "signal": None,
            "exec_format": False, "stdout": stdout, "stderr": "",
            "status": {"id": status, "description": "x"}}  # fmt: skip
    return {"verdict": verdict, "score": 1.0, "max_score": 1.0, "time": 0.012,
            "memory": 9 * 1024 * 1024, "compile_output": "", "message": "",
            "status": {"id": status, "description": "x"}, "cases": [case]}  # fmt: skip
