"""The settings the API and the workers share, and the worker's own: each declared once (see
sandbox.settings), read once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from sandbox.settings import setting
from sandbox.spec import TIERS

QUEUE = "stockade"
TASK_JUDGE = "stockade.judge"
TASK_CALLBACK = "stockade.callback"


def callback_queue(judge_queue: str) -> str:
    """The callbacks' own queue beside a judge queue (worker.callback_queue consumes it)."""
    return f"{judge_queue}.callbacks"


# --- Read by the API and the workers alike ---------------------------------------------------
REDIS_URL = setting(
    "STOCKADE_REDIS_URL",
    "redis://127.0.0.1:6379/0",
    "Redis for the store and the Celery broker, with its password "
    "(redis://:PASSWORD@host:6379/0); unix://:PASSWORD@/path works",
    secret=True,
)


def redacted(url: str) -> str:
    """The Redis URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


REDIS_PREFIX = setting("STOCKADE_REDIS_PREFIX", "stockade:", "key prefix of the store")
QUEUE_NAME = setting("STOCKADE_QUEUE", QUEUE, "the Celery queue of the judge task")
RESULT_TTL_S = setting(
    "STOCKADE_RESULT_TTL_S",
    86400,
    "a final result expires this long after it is stored",
    minimum=1,
)
MAX_ATTEMPTS = setting(
    "STOCKADE_MAX_ATTEMPTS",
    3,
    "deliveries of a job (its worker died) before it ends as Internal Error",
    minimum=1,
)
MIN_TIER = setting(
    "STOCKADE_MIN_TIER",
    "",
    "the weakest isolation any box runs in (container, gvisor, microvm); empty: no minimum",
    choices=("", *TIERS),
)
ALLOW_NETWORK = setting(
    "STOCKADE_ALLOW_NETWORK",
    False,
    "may a submission set enable_network (the API accepts it, a worker grants it)",
)
CALLBACK_ALLOW_PRIVATE = setting(
    "STOCKADE_CALLBACK_ALLOW_PRIVATE",
    False,
    "callbacks to loopback, private and metadata addresses",
)
CALLBACK_SECRET = setting(
    "STOCKADE_CALLBACK_SECRET",
    "",
    "HMAC-SHA256 key of the callback signature header",
    secret=True,
)
# Budgets of one submission: the API refuses more runs (422), a worker judges none of them
# (IE) and cuts what it keeps to the rest, whichever API queued the job.
MAX_RUNS_PER_SUBMISSION = setting(
    "STOCKADE_MAX_RUNS_PER_SUBMISSION",
    200,
    "boxes one submission may run: test cases x number_of_runs (422 above)",
    minimum=1,
)
KEPT_OUTPUT_PER_CASE = setting(
    "STOCKADE_KEPT_OUTPUT_PER_CASE",
    128 * 1024,
    "bytes of a case's stdout and stderr (together) kept in its result; the rest is cut "
    "(a submission of one case, as Judge0's, keeps each stream up to its max_file_size)",
    minimum=0,
)
KEPT_OUTPUT_TOTAL = setting(
    "STOCKADE_KEPT_OUTPUT_TOTAL",
    8 * 1024 * 1024,
    "bytes of stdout and stderr kept across all the cases of one submission (8 MiB: both "
    "streams at Judge0's largest max_file_size, 4096 KB)",
    minimum=0,
)
MAX_RESULT_BYTES = setting(
    "STOCKADE_MAX_RESULT_BYTES",
    16 * 1024 * 1024,
    "size of one stored result (its JSON); a worker cuts output, then cases, to fit (output "
    "that is not UTF-8 is kept twice: as lossy text and as base64)",
    minimum=4096,
)

# Problem packages uploaded through the native API (POST /api/v1/problems): the zip's size
# (the API's cap; a worker holds a package fetched from Redis to it too) and how long one
# stays in Redis after its last upload or submission against it.
MAX_PACKAGE_BYTES = setting(
    "STOCKADE_MAX_PACKAGE_BYTES",
    8 * 1024 * 1024,
    "size of an uploaded problem package (the zip, before base64); 413 above",
    minimum=1024,
)
PROBLEM_TTL_S = setting(
    "STOCKADE_PROBLEM_TTL_S",
    7 * 86400,
    "an uploaded problem package expires this long after its last upload or submission",
    minimum=1,
)

# --- The worker's own ------------------------------------------------------------------------
ROOTFS = setting(
    "STOCKADE_ROOTFS",
    "host",
    "host (the host's /usr), image (each language's own image), or one image's name",
)
SELF_TEST = setting(
    "STOCKADE_SELF_TEST", True, "self-test every language at start-up; a failing one is off"
)
VISIBILITY_TIMEOUT_S = setting(
    "STOCKADE_VISIBILITY_TIMEOUT_S",
    900,
    "a job whose worker host vanished comes back to the queue after this long",
    minimum=1,
)

# A package's own limits.memory is used as it is, up to this: above the API's per-request
# maximum (Judge0's 512000 KB), since contest packages commonly ask for 1 or 2 GiB.
PACKAGE_MAX_MEMORY_MIB = setting(
    "STOCKADE_PACKAGE_MAX_MEMORY_MIB",
    2048,
    "the most memory (MiB) a problem package may ask for; a package asking for more is refused",
    minimum=4,
)

PROBLEM_CACHE_DIR = setting(
    "STOCKADE_PROBLEM_CACHE_DIR",
    "",
    "where a worker unpacks uploaded problem packages, one folder per digest; "
    "empty: stockade-problems in the system's temporary directory",
)


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker reads from the environment, once, at start-up."""

    redis_url: str = REDIS_URL.as_str({})
    prefix: str = REDIS_PREFIX.as_str({})
    queue: str = QUEUE_NAME.as_str({})
    ttl_s: int = RESULT_TTL_S.as_int({})
    max_attempts: int = MAX_ATTEMPTS.as_int({})
    rootfs: str = ROOTFS.as_str({})
    min_tier: str = MIN_TIER.as_str({})
    # Read here as well as by the API: a queued job asking for the network gets it only
    # from a worker whose operator allows it.
    allow_network: bool = ALLOW_NETWORK.as_bool({})
    self_test: bool = SELF_TEST.as_bool({})
    visibility_timeout_s: int = VISIBILITY_TIMEOUT_S.as_int({})
    max_runs: int = MAX_RUNS_PER_SUBMISSION.as_int({})
    kept_output_per_case: int = KEPT_OUTPUT_PER_CASE.as_int({})
    kept_output_total: int = KEPT_OUTPUT_TOTAL.as_int({})
    max_result_bytes: int = MAX_RESULT_BYTES.as_int({})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        return cls(
            redis_url=REDIS_URL.as_str(env),
            prefix=REDIS_PREFIX.as_str(env),
            queue=QUEUE_NAME.as_str(env),
            ttl_s=RESULT_TTL_S.as_int(env),
            max_attempts=MAX_ATTEMPTS.as_int(env),
            rootfs=ROOTFS.as_str(env),
            min_tier=MIN_TIER.as_str(env),
            allow_network=ALLOW_NETWORK.as_bool(env),
            self_test=SELF_TEST.as_bool(env),
            visibility_timeout_s=VISIBILITY_TIMEOUT_S.as_int(env),
            max_runs=MAX_RUNS_PER_SUBMISSION.as_int(env),
            kept_output_per_case=KEPT_OUTPUT_PER_CASE.as_int(env),
            kept_output_total=KEPT_OUTPUT_TOTAL.as_int(env),
            max_result_bytes=MAX_RESULT_BYTES.as_int(env),
        )
