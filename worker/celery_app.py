"""The Celery app: Redis broker, late acks, and the worker's signals wired to its runtime."""

from __future__ import annotations

from urllib.parse import urlsplit

from celery import Celery
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

# tasks: imported for its @shared_task, which joins every app made after.
from worker import runtime, tasks  # noqa: F401
from worker.callback_queue import CallbackConsumer
from worker.jobs.settings import WorkerSettings


def broker_url(redis_url: str) -> str:
    """redis-py's unix://[:password@]/path (the Store's spelling) is kombu's
    redis+socket://[:password@]/path; the password goes along."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        userinfo = parts.netloc.rpartition("@")[0]
        return f"redis+socket://{userinfo + '@' if userinfo else ''}{parts.path}"
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
    # Callbacks are consumed by the main process in threads of their own, not by the pool.
    app.steps["consumer"].add(CallbackConsumer)
    worker_init.connect(runtime.on_worker_init, weak=False)
    worker_process_init.connect(runtime.on_process_init, weak=False)
    worker_process_shutdown.connect(runtime.on_process_shutdown, weak=False)
    worker_ready.connect(runtime.on_worker_ready, weak=False)
    worker_shutdown.connect(runtime.on_worker_shutdown, weak=False)
    return app
