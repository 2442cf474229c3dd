"""A record and its task written straight into the stack's Redis, past the API: the worker
holds it to the API's rules, and it ends as Internal Error naming the rule."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import redis

from tests.e2e.conftest import PYTHON, Stack, poll
from worker.jobs.model import Submission
from worker.jobs.queue import TASK, task_message
from worker.jobs.settings import QUEUE

PREFIX = "stockade:"  # the stack's defaults


def plant(client: redis.Redis, submission: str) -> str:
    token = str(uuid.uuid4())
    now = time.time()
    fields = {
        "submission": submission,
        "status_id": 1,
        "message": "",
        "created_at": repr(now),
        "attempts": 0,
        "callback_url": "",
        "meta": "{}",
        "language_id": PYTHON,
    }
    pipe = client.pipeline(transaction=True)
    pipe.hset(f"{PREFIX}sub:{token}", mapping=fields)  # type: ignore[arg-type]
    pipe.zadd(f"{PREFIX}tokens", {token: now})
    pipe.sadd(f"{PREFIX}queued", token)
    pipe.lpush(QUEUE, task_message(TASK, [token], QUEUE))
    pipe.execute()
    return token


def test_records_past_the_api_are_held_to_its_rules(stack: Stack, api: httpx.Client) -> None:
    good = Submission("print(1)", PYTHON).to_dict()
    planted = {
        "{not json": "submission: not valid JSON",
        json.dumps({**good, "cpu_time_limit": 999}): "cpu_time_limit: must be between",
        json.dumps({**good, "checker": {"kind": "custom", "program": None}}): "checker.program",
        json.dumps({**good, "language_id": 4242}): "language_id: no language 4242",
        json.dumps(good): "",  # the control: judged as usual
    }
    client = redis.Redis.from_url(stack.redis_url)
    try:
        tokens = {plant(client, text): rule for text, rule in planted.items()}
    finally:
        client.close()
    for token, rule in tokens.items():
        body = poll(api, token)
        status = body["status"]["id"]  # type: ignore[index]
        if not rule:
            assert status == 3, body
            continue
        assert status == 13 and rule in str(body["message"]), body
