"""The one task, `stockade.judge`: start the record, judge, finish it, and queue the callback
(delivered by worker.callback_queue, outside the judging slot)."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from celery import shared_task

from worker import runtime
from worker.callback_queue import enqueue
from worker.jobs.settings import MAX_RESULT_BYTES, TASK_JUDGE
from worker.jobs.store import INTERNAL_ERROR, Record
from worker.trim import fit_result

if TYPE_CHECKING:
    from worker.jobs.model import Submission

log = logging.getLogger("stockade.worker")
_T = TypeVar("_T")

STORE_RETRY_S = 60.0  # how long a job waits for Redis to come back before it gives up
MESSAGE_CHARS = 4096  # of a record's message: an exception's text can be any length


class JobStore(Protocol):
    def start(self, token: str) -> Record | None: ...

    def finish(
        self, token: str, status_id: int, result: dict[str, Any] | None, message: str = ""
    ) -> None: ...


class Outcome(Protocol):
    """A job's outcome as the record keeps it: a JudgeResult, or a graded submission's."""

    @property
    def message(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...

    def judge0_status(self) -> int: ...


JudgeFn = Callable[["Submission"], "tuple[Outcome, dict[str, float]]"]
NotifyFn = Callable[[str], None]  # queues the callback of a final submission, by token


def run_job(
    token: str,
    store: JobStore,
    judge: JudgeFn,
    max_attempts: int,
    notify: NotifyFn | None = None,
    max_result_bytes: int = MAX_RESULT_BYTES.as_int({}),
) -> int | None:
    """Judge one stored submission; returns its final status id (None: unknown token).

    The result stored is JudgeResult.to_dict() plus "timings" (wall seconds):
    queue_wait_s, compile_s, run_s, judge_s, and "attempts"; cut to fit max_result_bytes
    (STOCKADE_MAX_RESULT_BYTES) whatever the API that queued it allowed."""
    rec = _retrying(lambda: store.start(token))
    if rec is None:
        log.info("%s: no such submission (deleted or expired)", token)
        return None
    if rec.final:
        log.info("%s: already final (status %d), not judged again", token, rec.status_id)
        return rec.status_id
    started = rec.started_at or time.time()
    timings: dict[str, float] = {"queue_wait_s": max(0.0, started - rec.created_at)}
    result: dict[str, Any] | None
    if rec.attempts > max_attempts:
        status, result = INTERNAL_ERROR, {"timings": timings, "attempts": rec.attempts - 1}
        message = (
            f"the job kept killing its worker: {rec.attempts - 1} attempts ended without a "
            f"verdict (limit STOCKADE_MAX_ATTEMPTS={max_attempts})"
        )
        log.error("%s: %s", token, message)
    elif rec.invalid:
        # Queued past the API (or by an older one): held to the API's rules, nothing is run.
        status, result = INTERNAL_ERROR, {"timings": timings, "attempts": rec.attempts}
        message = f"the queued submission breaks the rules, nothing was run: {rec.invalid}"
        log.error("%s: %s", token, message)
    else:
        t0 = time.monotonic()
        try:
            verdict, phases = judge(rec.submission)
            result = verdict.to_dict()
            status, message = verdict.judge0_status(), verdict.message
            timings.update(phases)
        except Exception as e:  # any bug or broken host is the job's IE, never a lost job
            log.error("%s: judge failed\n%s", token, traceback.format_exc())
            status, result, message = INTERNAL_ERROR, {}, f"internal error: {type(e).__name__}: {e}"
        timings["judge_s"] = time.monotonic() - t0
        result["timings"] = timings
        result["attempts"] = rec.attempts
        result = fit_result(result, max_result_bytes)
    message = message[:MESSAGE_CHARS]
    _finish(store, token, status, result, message)
    if rec.callback_url and notify is not None:
        try:
            _retrying(lambda: notify(token))
        except Exception:  # the verdict is stored; only the callback is lost
            log.error("%s: callback not queued", token, exc_info=True)
    return status


def _finish(
    store: JobStore, token: str, status: int, result: dict[str, Any] | None, message: str
) -> None:
    _retrying(lambda: store.finish(token, status, result, message))


def _retrying(call: Callable[[], _T]) -> _T:
    """Redis can be away for a while (restarted, failing over): keep trying for up to
    STORE_RETRY_S with backoff rather than drop a verdict, which would leave the record in
    Processing for good. Past that the error propagates, and since failed tasks are not
    acknowledged (celery_app), the broker delivers the job again."""
    deadline = time.monotonic() + STORE_RETRY_S
    delay = 0.1
    while True:
        try:
            return call()
        except Exception:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("store unavailable, retrying in %.1f s", delay, exc_info=True)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def judge_token(token: str) -> int | None:
    """The task's body: this process's store and judge; callbacks go on their own queue."""
    s = runtime.settings()
    store = runtime.store()
    return run_job(
        token,
        store,
        runtime.judge_any,
        s.max_attempts,
        max_result_bytes=s.max_result_bytes,
        notify=lambda t: enqueue(store.redis, s.queue, t),
    )


judge = shared_task(name=TASK_JUDGE, ignore_result=True)(judge_token)
