"""Service settings: every one from a STOCKADE_ environment variable, read once at start-up."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.settings import setting
from worker.jobs.model import MAXIMA
from worker.jobs.settings import (
    ALLOW_NETWORK,
    CALLBACK_ALLOW_PRIVATE,
    CALLBACK_SECRET,
    MAX_ATTEMPTS,
    MAX_PACKAGE_BYTES,
    MAX_RUNS_PER_SUBMISSION,
    MIN_TIER,
    PACKAGE_MAX_MEMORY_MIB,
    PROBLEM_TTL_S,
    QUEUE_NAME,
    REDIS_PREFIX,
    REDIS_URL,
    RESULT_TTL_S,
)

MIB = 1024 * 1024


# The API's own settings; those the workers read too are declared in worker.jobs.settings.
MAX_QUEUE_DEPTH = setting(
    "STOCKADE_MAX_QUEUE_DEPTH", 1000, "submissions In Queue before POST answers 503", minimum=1
)
MAX_BODY_BYTES = setting(
    "STOCKADE_MAX_BODY_BYTES", 16 * MIB, "request body cap in bytes, 413 above", minimum=1
)
MAX_SOURCE_BYTES = setting(
    "STOCKADE_MAX_SOURCE_BYTES",
    1 * MIB,
    "source_code cap in bytes (after base64 decoding), 413 above",
    minimum=1,
)
MAX_BATCH_SIZE = setting(
    "STOCKADE_MAX_BATCH_SIZE", 20, "submissions per batch (Judge0's 20), 422 above", minimum=1
)
AUTH_TOKENS = setting(
    "STOCKADE_AUTH_TOKENS",
    (),
    "comma-separated tokens accepted in X-Auth-Token (or a Bearer header); empty: no auth",
    secret=True,
)
AUTHZ_TOKENS = setting(
    "STOCKADE_AUTHZ_TOKENS",
    (),
    "comma-separated X-Auth-User tokens for DELETE and the submission list (Judge0's AUTHZ)",
    secret=True,
)
RATE_LIMIT_PER_MINUTE = setting(
    "STOCKADE_RATE_LIMIT_PER_MINUTE",
    0,
    "requests a minute per verified token (or client address); 0: no limit",
    minimum=0,
)
AUTH_FAILURES_PER_MINUTE = setting(
    "STOCKADE_AUTH_FAILURES_PER_MINUTE",
    10,
    "wrong X-Auth-Token or X-Auth-User a minute per client address before 429",
    minimum=1,
)
TRUSTED_PROXIES = setting(
    "STOCKADE_TRUSTED_PROXIES",
    0,
    "proxies in front of the API whose X-Forwarded-For/-Host/-Proto are believed; 0: none",
    minimum=0,
)
ALLOWED_HOSTS = setting(
    "STOCKADE_ALLOWED_HOSTS",
    (),
    "with auth off, Host names served besides localhost, 127.0.0.1 and ::1 (DNS rebinding)",
)
ENABLE_SUBMISSION_DELETE = setting(
    "STOCKADE_ENABLE_SUBMISSION_DELETE",
    False,
    "DELETE of a finished submission by an X-Auth-User token (Judge0's default: off)",
)
OWNER_ONLY_READS = setting(
    "STOCKADE_OWNER_ONLY_READS",
    False,
    "a submission is read only with the token that made it or an X-Auth-User token",
)
MAX_QUEUED_PER_CLIENT = setting(
    "STOCKADE_MAX_QUEUED_PER_CLIENT",
    100,
    "submissions one token (or client address) may have waiting or running; 429 above",
    minimum=1,
)
MAX_QUEUE_SHARE = setting(
    "STOCKADE_MAX_QUEUE_SHARE",
    0.5,
    "the part of STOCKADE_MAX_QUEUE_DEPTH one token (or client address) may fill, up to 1",
    minimum=0.001,
)
MAX_PROBLEMS_PER_CLIENT = setting(
    "STOCKADE_MAX_PROBLEMS_PER_CLIENT",
    20,
    "problem packages one token (or client address) may have uploaded within "
    "STOCKADE_PROBLEM_TTL_S; 429 above",
    minimum=1,
)
WAIT_TIMEOUT_S = setting(
    "STOCKADE_WAIT_TIMEOUT_S",
    60.0,
    "seconds wait=true (and Piston's execute) waits for a result before answering without it",
    minimum=0,
)
ENABLE_WAIT_RESULT = setting(
    "STOCKADE_ENABLE_WAIT_RESULT",
    True,
    "Judge0's wait=true is served (Judge0's ENABLE_WAIT_RESULT); off: 400 wait not allowed",
)
ALLOW_ORIGIN = setting(
    "STOCKADE_ALLOW_ORIGIN",
    (),
    "origins a browser may call the API from (CORS; Judge0's ALLOW_ORIGIN); empty: every one",
)
DISALLOW_ORIGIN = setting(
    "STOCKADE_DISALLOW_ORIGIN",
    (),
    "origins refused CORS headers, matched as parts of the Origin (Judge0's DISALLOW_ORIGIN)",
)
# The workers' callback settings (worker.callbacks), declared again to show in /config_info.
CALLBACK_MAX_TRIES = setting(
    "STOCKADE_CALLBACK_MAX_TRIES", 3, "tries of each callback (Judge0's 3)", minimum=1
)
CALLBACK_TIMEOUT_S = setting(
    "STOCKADE_CALLBACK_TIMEOUT_S",
    5.0,
    "wall-clock seconds of each callback try, however slowly the receiver answers (Judge0's 5)",
    minimum=0,
)
# Operator maximums of the Judge0 limit fields, in Judge0's units (seconds, KB).
MAX_LIMITS = {
    key: setting(f"STOCKADE_MAX_{key.upper()}", float(value), f"the most a request's {key} may be")
    for key, value in MAXIMA.items()
}


@dataclass(frozen=True)
class Config:
    """The API's settings, one per STOCKADE_ variable (SETTINGS), read once at start-up."""

    redis_url: str = REDIS_URL.as_str({})
    redis_prefix: str = REDIS_PREFIX.as_str({})
    queue: str = QUEUE_NAME.as_str({})
    result_ttl_s: int = RESULT_TTL_S.as_int({})
    max_queue_depth: int = MAX_QUEUE_DEPTH.as_int({})
    max_body_bytes: int = MAX_BODY_BYTES.as_int({})
    max_source_bytes: int = MAX_SOURCE_BYTES.as_int({})
    max_batch_size: int = MAX_BATCH_SIZE.as_int({})
    auth_tokens: tuple[str, ...] = AUTH_TOKENS.as_words({})
    authz_tokens: tuple[str, ...] = AUTHZ_TOKENS.as_words({})
    rate_limit_per_minute: int = RATE_LIMIT_PER_MINUTE.as_int({})
    auth_failures_per_minute: int = AUTH_FAILURES_PER_MINUTE.as_int({})
    trusted_proxies: int = TRUSTED_PROXIES.as_int({})
    allowed_hosts: tuple[str, ...] = ALLOWED_HOSTS.as_words({})
    enable_submission_delete: bool = ENABLE_SUBMISSION_DELETE.as_bool({})
    owner_only_reads: bool = OWNER_ONLY_READS.as_bool({})
    max_queued_per_client: int = MAX_QUEUED_PER_CLIENT.as_int({})
    max_queue_share: float = MAX_QUEUE_SHARE.as_float({})
    max_runs: int = MAX_RUNS_PER_SUBMISSION.as_int({})
    max_limits: Mapping[str, float] = field(default_factory=lambda: dict(MAXIMA))
    allow_network: bool = ALLOW_NETWORK.as_bool({})
    callback_allow_private: bool = CALLBACK_ALLOW_PRIVATE.as_bool({})
    callback_secret: str = CALLBACK_SECRET.as_str({})
    wait_timeout_s: float = WAIT_TIMEOUT_S.as_float({})
    enable_wait_result: bool = ENABLE_WAIT_RESULT.as_bool({})
    allow_origin: tuple[str, ...] = ALLOW_ORIGIN.as_words({})
    disallow_origin: tuple[str, ...] = DISALLOW_ORIGIN.as_words({})
    callback_max_tries: int = CALLBACK_MAX_TRIES.as_int({})
    callback_timeout_s: float = CALLBACK_TIMEOUT_S.as_float({})
    max_attempts: int = MAX_ATTEMPTS.as_int({})
    min_tier: str = MIN_TIER.as_str({})
    max_package_bytes: int = MAX_PACKAGE_BYTES.as_int({})
    problem_ttl_s: int = PROBLEM_TTL_S.as_int({})
    package_max_memory_mib: int = PACKAGE_MAX_MEMORY_MIB.as_int({})
    max_problems_per_client: int = MAX_PROBLEMS_PER_CLIENT.as_int({})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Reads the STOCKADE_ variables; a bad value raises ValueError naming the variable."""
        values: dict[str, Any] = {f: s.read(env) for f, s in SETTINGS.items()}
        values["max_limits"] = {key: s.read(env) for key, s in MAX_LIMITS.items()}
        return cls(**values)

    def __post_init__(self) -> None:
        if self.max_queue_share > 1:
            raise ValueError(
                f"{MAX_QUEUE_SHARE.name}: must be at most 1 (got {self.max_queue_share:g})"
            )
        if self.owner_only_reads and not self.auth_tokens:
            # Without tokens every submission is the same nobody's: the setting would
            # promise what it cannot hold.
            raise ValueError(
                f"{OWNER_ONLY_READS.name}: needs {AUTH_TOKENS.name} (no tokens, no owners)"
            )

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def client_queue_cap(self) -> int:
        """The most one client may have open: its own cap, and its share of the queue's."""
        share = max(1, int(self.max_queue_depth * self.max_queue_share))
        return min(self.max_queued_per_client, share)


SETTINGS = {
    "redis_url": REDIS_URL,
    "redis_prefix": REDIS_PREFIX,
    "queue": QUEUE_NAME,
    "result_ttl_s": RESULT_TTL_S,
    "max_queue_depth": MAX_QUEUE_DEPTH,
    "max_body_bytes": MAX_BODY_BYTES,
    "max_source_bytes": MAX_SOURCE_BYTES,
    "max_batch_size": MAX_BATCH_SIZE,
    "auth_tokens": AUTH_TOKENS,
    "authz_tokens": AUTHZ_TOKENS,
    "rate_limit_per_minute": RATE_LIMIT_PER_MINUTE,
    "auth_failures_per_minute": AUTH_FAILURES_PER_MINUTE,
    "trusted_proxies": TRUSTED_PROXIES,
    "allowed_hosts": ALLOWED_HOSTS,
    "enable_submission_delete": ENABLE_SUBMISSION_DELETE,
    "owner_only_reads": OWNER_ONLY_READS,
    "max_queued_per_client": MAX_QUEUED_PER_CLIENT,
    "max_queue_share": MAX_QUEUE_SHARE,
    "max_runs": MAX_RUNS_PER_SUBMISSION,
    "allow_network": ALLOW_NETWORK,
    "callback_allow_private": CALLBACK_ALLOW_PRIVATE,
    "callback_secret": CALLBACK_SECRET,
    "wait_timeout_s": WAIT_TIMEOUT_S,
    "enable_wait_result": ENABLE_WAIT_RESULT,
    "allow_origin": ALLOW_ORIGIN,
    "disallow_origin": DISALLOW_ORIGIN,
    "callback_max_tries": CALLBACK_MAX_TRIES,
    "callback_timeout_s": CALLBACK_TIMEOUT_S,
    "max_attempts": MAX_ATTEMPTS,
    "min_tier": MIN_TIER,
    "max_package_bytes": MAX_PACKAGE_BYTES,
    "problem_ttl_s": PROBLEM_TTL_S,
    "package_max_memory_mib": PACKAGE_MAX_MEMORY_MIB,
    "max_problems_per_client": MAX_PROBLEMS_PER_CLIENT,
}
