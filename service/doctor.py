"""The service's own doctor check, added to the host's: does Redis answer where the API and
the workers will look for it."""

from __future__ import annotations

import argparse

import redis

from sandbox.cli import doctor
from sandbox.doctor.checks import Finding, Level, ok
from service.config import Config
from worker.jobs.settings import redacted


def check_redis(url: str, error: str | None) -> Finding:
    """error: why PING failed, or None when Redis answered."""
    shown = redacted(url)
    if error is None:
        return ok("Redis", f"{shown} answers PING")
    fix = "start Redis (`stockade up` starts a private one) or set STOCKADE_REDIS_URL to it"
    detail = f"{shown} is not reachable ({error}): the API and workers cannot run"
    return Finding("Redis", Level.WARN, detail, fix)


def redis_ping(url: str) -> Finding:
    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        client.ping()
        client.close()
        error = None
    except (redis.exceptions.RedisError, OSError, ValueError) as e:
        error = str(e) or type(e).__name__
    return check_redis(url, error)


def run_doctor(args: argparse.Namespace) -> int:
    """`stockade doctor`: the host's checks and Redis."""
    url = Config.from_env().redis_url
    return doctor.run_doctor(args, [("Redis", lambda: [redis_ping(url)])])
