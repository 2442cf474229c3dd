"""What a worker reads from the environment, once, at start-up, and the queue's names."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sandbox.spec import TIERS
from worker.env import parse_bool

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
QUEUE = "stockade"
TASK_JUDGE = "stockade.judge"


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker reads from the environment, once, at start-up."""

    redis_url: str = DEFAULT_REDIS_URL
    prefix: str = "stockade:"
    queue: str = QUEUE
    ttl_s: int = 86400
    max_attempts: int = 3
    rootfs: str = "host"
    # Every box runs at least this strongly (container, gvisor, microvm); "" for no minimum.
    min_tier: str = ""
    # The operator's STOCKADE_ALLOW_NETWORK, read here as well as by the API: a queued job
    # asking for the network gets it only from a worker whose operator allows it.
    allow_network: bool = False
    self_test: bool = True
    # A task whose worker host vanished (not just its child) comes back after this long.
    visibility_timeout_s: int = 900

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> WorkerSettings:
        e = os.environ if env is None else env
        base = cls()
        return cls(
            redis_url=e.get("STOCKADE_REDIS_URL") or base.redis_url,
            prefix=e.get("STOCKADE_REDIS_PREFIX", base.prefix),
            queue=e.get("STOCKADE_QUEUE", base.queue),
            ttl_s=int(e.get("STOCKADE_RESULT_TTL_S", base.ttl_s)),
            max_attempts=max(1, int(e.get("STOCKADE_MAX_ATTEMPTS", base.max_attempts))),
            rootfs=e.get("STOCKADE_ROOTFS", base.rootfs),
            min_tier=_min_tier(e.get("STOCKADE_MIN_TIER", base.min_tier)),
            allow_network=_flag("STOCKADE_ALLOW_NETWORK", e.get("STOCKADE_ALLOW_NETWORK", "")),
            self_test=e.get("STOCKADE_SELF_TEST", "1") != "0",
            visibility_timeout_s=int(
                e.get("STOCKADE_VISIBILITY_TIMEOUT_S", base.visibility_timeout_s)
            ),
        )


def _min_tier(text: str) -> str:
    if text not in ("", *TIERS):
        raise ValueError(f"STOCKADE_MIN_TIER: must be one of {', '.join(TIERS)}, got {text!r}")
    return text


def _flag(name: str, text: str) -> bool:
    """True or false by the rule service/config.py reads the API's settings with, so the
    API and the worker never disagree on what one operator's setting says."""
    try:
        return parse_bool(text)
    except ValueError as e:
        raise ValueError(f"{name}: {e} (got {text!r})") from None
