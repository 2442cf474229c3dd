"""The API's hand-built Celery message against what Celery itself would push, and a worker-side
decode of it: a Celery release that changes the format must fail here, not strand jobs."""

from __future__ import annotations

import base64
import json
from typing import Any

import celery
import redis

from tests.unit.redis_server import redis_url  # noqa: F401  (fixture)
from worker.jobs.queue import TASK, task_message


def _celerys_own(url: str) -> dict[str, Any]:
    path = url.removeprefix("unix://")
    app = celery.Celery("stockade", broker=f"redis+socket://{path}")
    app.conf.task_serializer = "json"
    app.send_task(TASK, args=["token-1"], queue="stockade")
    raw = redis.Redis(unix_socket_path=path).lrange("stockade", 0, -1)[0]
    message: dict[str, Any] = json.loads(raw)
    return message


def _shape(value: Any) -> Any:
    """Keys and value types, recursively: what a consumer relies on."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__


def test_same_envelope_and_headers_as_send_task(redis_url: str) -> None:  # noqa: F811
    theirs = _celerys_own(redis_url)
    ours = json.loads(task_message(TASK, ["token-1"], "stockade"))
    assert set(ours) == set(theirs)
    assert set(ours["headers"]) == set(theirs["headers"])
    assert set(ours["properties"]) == set(theirs["properties"])
    assert _shape(ours["properties"]["delivery_info"]) == _shape(
        theirs["properties"]["delivery_info"]
    )
    for key in ("content-encoding", "content-type"):
        assert ours[key] == theirs[key]
    assert ours["properties"]["body_encoding"] == theirs["properties"]["body_encoding"]
    assert ours["headers"]["task"] == theirs["headers"]["task"] == TASK
    decode = lambda m: json.loads(base64.b64decode(m["body"]))  # noqa: E731
    assert decode(ours) == decode(theirs)  # [["token-1"], {}, {callbacks, errbacks, ...}]


def test_each_message_has_its_own_ids() -> None:
    a = json.loads(task_message(TASK, ["t"], "q"))
    b = json.loads(task_message(TASK, ["t"], "q"))
    assert a["headers"]["id"] != b["headers"]["id"]
    assert a["properties"]["delivery_tag"] != b["properties"]["delivery_tag"]
    assert a["properties"]["delivery_info"]["routing_key"] == "q"
