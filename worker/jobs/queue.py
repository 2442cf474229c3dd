"""Putting a judge job on the Celery queue: Celery's message protocol 2 in kombu's Redis
envelope, pushed with one LPUSH.

This is what `celery.Celery.send_task` pushes, field for field; built by hand because kombu's
publish path costs about a millisecond of CPU per submission on the API's hot path, more than
the rest of the request. tests/unit/test_queue.py compares the two, so a Celery release that
changes the format fails the suite instead of stranding jobs."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from worker.jobs.settings import TASK_JUDGE

TASK = TASK_JUDGE  # the worker's name for it, which its @shared_task registers
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def task_message(task: str, args: list[Any], queue: str) -> bytes:
    task_id = str(uuid.uuid4())
    body = json.dumps([args, {}, _EMBED]).encode()
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": repr(args),
            "kwargsrepr": "{}",
            "origin": "stockade-api",
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(envelope).encode()
