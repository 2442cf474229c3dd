"""The API's hand-built Celery message against what Celery itself would push, and a worker-side
decode of it: a Celery release that changes the format must fail here, not strand jobs."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import celery
import pytest
import redis

from service.doctor import check_redis
from tests.unit.redis_server import redis_url  # noqa: F401  (fixture)
from worker.celery_app import broker_url, make_app
from worker.jobs.queue import TASK, task_message
from worker.jobs.settings import WorkerSettings, redacted


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


def test_the_broker_url_keeps_a_unix_socket_password(tmp_path: Path) -> None:
    """`stockade up`'s private Redis requires a password on its socket: Celery must give it
    too. broker_url dropped it (redis+socket:///path), and the workers could not consume."""
    assert broker_url("unix://:pw@/run/x/redis.sock") == "redis+socket://:pw@/run/x/redis.sock"
    assert broker_url("unix:///run/x/redis.sock") == "redis+socket:///run/x/redis.sock"
    assert broker_url("redis://:pw@h:6379/0") == "redis://:pw@h:6379/0"
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("needs redis-server (apt-get install redis-server)")
    sock = tmp_path / "redis.sock"
    args = ["--port", "0", "--unixsocket", str(sock), "--save", "", "--dir", str(tmp_path), "-"]
    proc = subprocess.Popen([server, *args], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.stdin is not None
    with proc.stdin:
        proc.stdin.write(b"requirepass s3cret\n")
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        url = f"unix://:s3cret@{sock}"
        app = make_app(dataclasses.replace(WorkerSettings.from_env({}), redis_url=url))
        with app.connection() as conn:
            conn.ensure_connection(max_retries=1)
            assert conn.default_channel.client.ping()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_redis_password_never_shows_in_messages() -> None:
    assert redacted("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redacted("unix://:s3cret@/run/x/redis.sock") == "unix://:***@/run/x/redis.sock"
    assert redacted("redis://redis:6379/0") == "redis://redis:6379/0"
    finding = check_redis("redis://:s3cret@redis:6379/0", "Connection refused")
    assert "s3cret" not in finding.detail and "***" in finding.detail
    assert "s3cret" not in check_redis("redis://:s3cret@redis:6379/0", None).detail
