"""The Celery app: Redis broker, late acks, self-tests once, one Launcher and Judge per process."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from celery import Celery
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from worker.env import parse_bool

if TYPE_CHECKING:
    from sandbox.launcher import Launcher
    from worker.callbacks import CallbackSettings
    from worker.heartbeat import Heartbeat
    from worker.store import Store
    from worker.timing import TimedJudge

log = logging.getLogger("stockade.worker")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
QUEUE = "stockade"
TASK_JUDGE = "stockade.judge"
REASONS_KEY = "languages:disabled_reasons"  # after the prefix: hash {language id: reason}


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
    from sandbox.spec import TIERS

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


def broker_url(redis_url: str) -> str:
    """redis-py's unix:///path (the Store's spelling) is kombu's redis+socket:///path."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        return f"redis+socket://{parts.path}"
    return redis_url


def make_app(settings: WorkerSettings | None = None) -> Celery:
    """The app, configured from `settings` (the environment when None)."""
    s = settings or WorkerSettings.from_env()
    app = Celery("stockade", set_as_current=True)
    app.conf.update(
        broker_url=broker_url(s.redis_url),
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": s.visibility_timeout_s},
        # A child killed mid-job (OOM killer, SIGKILL) gives its message back to the queue;
        # the task counts attempts in the store and gives up after max_attempts.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A task that failed (Redis was away longer than the task's own retries) is not
        # acknowledged either: the broker gives it again after the visibility timeout, so no
        # record is left In Queue or Processing for good.
        task_acks_on_failure_or_timeout=False,
        worker_prefetch_multiplier=1,
        task_default_queue=s.queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    app.conf.stockade = s
    worker_init.connect(_on_worker_init, weak=False)
    worker_process_init.connect(_on_process_init, weak=False)
    worker_process_shutdown.connect(_on_process_shutdown, weak=False)
    worker_ready.connect(_on_worker_ready, weak=False)
    worker_shutdown.connect(_on_worker_shutdown, weak=False)
    import worker.tasks  # noqa: F401  (registers stockade.judge with this app)

    return app


# --- One launcher and judge per worker process ------------------------------------------------

_state_lock = threading.Lock()
_enabled: set[int] | None = None  # set by the self-tests in the parent, inherited by children
_launcher: Launcher | None = None
_judge: TimedJudge | None = None
_store: Store | None = None
_callbacks: CallbackSettings | None = None
_heartbeat: Heartbeat | None = None


def settings() -> WorkerSettings:
    from celery import current_app

    s = getattr(current_app.conf, "stockade", None)
    return s if isinstance(s, WorkerSettings) else WorkerSettings.from_env()


def current_judge() -> TimedJudge:
    """This process's Judge (created on first use when worker_process_init did not run)."""
    global _launcher, _judge
    with _state_lock:
        if _judge is None:
            from sandbox.launcher import Launcher
            from worker.languages import load_languages
            from worker.timing import TimedJudge

            langs = load_languages()
            if _enabled is not None:
                langs = {i: lang for i, lang in langs.items() if i in _enabled}
            _launcher = Launcher()
            s = settings()
            _judge = TimedJudge(
                _launcher,
                langs,
                rootfs=s.rootfs,
                min_tier=s.min_tier,
                allow_network=s.allow_network,
            )
        return _judge


def store() -> Store:
    """This process's Store (its connection pool is not shared across fork)."""
    global _store
    with _state_lock:
        if _store is None:
            from worker.store import Store

            s = settings()
            _store = Store(s.redis_url, s.prefix, s.ttl_s)
        return _store


def callback_settings() -> CallbackSettings:
    global _callbacks
    with _state_lock:
        if _callbacks is None:
            from worker.callbacks import CallbackSettings

            _callbacks = CallbackSettings.from_env()
        return _callbacks


def close_judge() -> None:
    global _launcher, _judge
    with _state_lock:
        if _launcher is not None:
            _launcher.close()
        _launcher = None
        _judge = None


def run_self_tests(s: WorkerSettings) -> dict[int, str]:
    """Every language's self-test in a launcher of its own (closed before the pool forks):
    the enabled ones are served, the others are logged and listed in Redis."""
    global _enabled
    from sandbox.launcher import Launcher
    from worker.languages import load_languages, self_test_all

    langs = load_languages()
    if not s.self_test:
        _enabled = set(langs)
        disabled: dict[int, str] = {}
    else:
        with Launcher() as launcher:
            outcome = self_test_all(launcher, s.rootfs, langs)
        _enabled = {i for i, (ok, _) in outcome.items() if ok}
        disabled = {i: why for i, (ok, why) in outcome.items() if not ok}
    for i, why in sorted(disabled.items()):
        log.warning("language %d (%s) disabled: %s", i, langs[i].name, why)
    log.info("serving %d languages, %d disabled", len(_enabled), len(disabled))
    _publish_disabled(s, disabled)
    return disabled


def _publish_disabled(s: WorkerSettings, disabled: dict[int, str]) -> None:
    """The ids go to the store's set (the API's /languages and /metrics); the reasons to
    the hash `languages:disabled_reasons` beside it."""
    import redis

    from worker.store import Store

    try:
        store = Store(s.redis_url, s.prefix, s.ttl_s)
        store.set_disabled_languages(sorted(disabled))
        key = s.prefix + REASONS_KEY
        pipe = store.redis.pipeline(transaction=True)
        pipe.delete(key)
        if disabled:
            pipe.hset(key, mapping={str(k): v for k, v in disabled.items()})
        pipe.execute()
        store.redis.close()
    except redis.RedisError as e:
        log.error("could not store the disabled languages in Redis: %s", e)


def _on_worker_init(**_: Any) -> None:
    run_self_tests(settings())


def _on_process_init(**_: Any) -> None:
    current_judge()


def _on_process_shutdown(**_: Any) -> None:
    close_judge()


def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    """The heartbeat starts once the self-tests are done and the pool is up."""
    global _heartbeat
    from worker.heartbeat import Heartbeat

    s = settings()
    hostname = str(getattr(sender, "hostname", "") or os.uname().nodename)
    controller = getattr(sender, "controller", None)
    concurrency = int(getattr(controller, "concurrency", 0) or 1)
    _heartbeat = Heartbeat(s.redis_url, s.prefix, hostname, concurrency)
    _heartbeat.start()


def _on_worker_shutdown(**_: Any) -> None:
    global _heartbeat
    if _heartbeat is not None:
        _heartbeat.stop()
        _heartbeat = None
