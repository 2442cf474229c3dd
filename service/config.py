"""Service settings: every one from a STOCKADE_ environment variable, read once at start-up."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.spec import TIERS
from worker.env import parse_bool
from worker.model import MAXIMA

MIB = 1024 * 1024


@dataclass(frozen=True)
class Config:
    """One field per STOCKADE_<FIELD NAME IN CAPITALS> variable; the default is in brackets."""

    # Redis for the store and the Celery broker [redis://127.0.0.1:6379/0]; unix:///path works.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "stockade:"  # key prefix of the store [stockade:]
    queue: str = "stockade"  # Celery queue the judge task goes to [stockade]
    result_ttl_s: int = 86400  # a final result expires this long after it is stored [1 day]
    max_queue_depth: int = 1000  # submissions In Queue before POST answers 503 [1000]
    max_body_bytes: int = 16 * MIB  # request body cap, 413 above [16 MiB]
    max_source_bytes: int = 1 * MIB  # source_code cap (after base64 decoding), 413 above [1 MiB]
    max_batch_size: int = 20  # submissions per batch, 422 above [20, as Judge0]
    # Comma-separated tokens accepted in X-Auth-Token (or Authorization: Bearer). Empty: no
    # authentication, for local use [empty].
    auth_tokens: tuple[str, ...] = ()
    # Comma-separated tokens accepted in X-Auth-User for DELETE and the submission list,
    # as Judge0's AUTHZ. Empty: those need no authorization [empty].
    authz_tokens: tuple[str, ...] = ()
    rate_limit_per_minute: int = 0  # requests per token (or client address) a minute; 0 off [0]
    # Operator maximums of the Judge0 limit fields, in Judge0 units (seconds, KB):
    # STOCKADE_MAX_CPU_TIME_LIMIT, STOCKADE_MAX_MEMORY_LIMIT, ... [Judge0 CE's maxima]
    max_limits: Mapping[str, float] = field(default_factory=lambda: dict(MAXIMA))
    allow_network: bool = False  # may a submission set enable_network [false]
    callback_allow_private: bool = False  # callbacks to loopback/private/metadata [false]
    callback_secret: str = ""  # HMAC-SHA256 key for the callback signature header [empty]
    wait_timeout_s: float = 30.0  # wait=true answers with the token after this [30]
    max_attempts: int = 3  # deliveries of a job before it ends as Internal Error [3]
    # The weakest isolation any submission runs in: container, gvisor or microvm. A request
    # or a language asking for less is raised to it, never the reverse [empty: no minimum].
    min_tier: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Reads the STOCKADE_ variables; a bad value raises ValueError naming the variable."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "max_limits":
                continue
            name = f"STOCKADE_{f.name.upper()}"
            if name in env:
                values[f.name] = _parse(name, env[name], f.default)
        limits = dict(MAXIMA)
        for key in MAXIMA:
            name = f"STOCKADE_MAX_{key.upper()}"
            if name in env:
                limits[key] = _parse(name, env[name], 0.0)
        values["max_limits"] = limits
        if values.get("min_tier", "") not in ("", *TIERS):
            raise ValueError(f"STOCKADE_MIN_TIER: must be one of {', '.join(TIERS)}")
        return cls(**values)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def _parse(name: str, text: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return parse_bool(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple):
            return tuple(t.strip() for t in text.split(",") if t.strip())
        return text
    except ValueError as e:
        raise ValueError(f"{name}: {e} (got {text!r})") from None
