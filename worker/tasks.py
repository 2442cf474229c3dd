"""The one task, `stockade.judge`: start the record, judge, finish it, call back."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from celery import shared_task

from worker.store import INTERNAL_ERROR, Record

if TYPE_CHECKING:
    from worker.model import JudgeResult, Submission

log = logging.getLogger("stockade.worker")

FINISH_TRIES = 3  # a Redis hiccup while storing the verdict; then the task fails loudly


class JobStore(Protocol):
    def start(self, token: str) -> Record | None: ...

    def finish(
        self, token: str, status_id: int, result: dict[str, Any] | None, message: str = ""
    ) -> None: ...


JudgeFn = Callable[["Submission"], "tuple[JudgeResult, dict[str, float]]"]
CallbackFn = Callable[[str, dict[str, Any]], "tuple[bool, str]"]


def run_job(
    token: str,
    store: JobStore,
    judge: JudgeFn,
    max_attempts: int,
    callback: CallbackFn | None = None,
) -> int | None:
    """Judge one stored submission; returns its final status id (None: unknown token).

    The result stored is JudgeResult.to_dict() plus "timings" (wall seconds):
    queue_wait_s, compile_s, run_s, judge_s, and "attempts"."""
    rec = store.start(token)
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
    _finish(store, token, status, result, message)
    if rec.callback_url and callback is not None:
        from worker.callbacks import judge0_body

        ok, why = callback(rec.callback_url, judge0_body(token, status, result, message))
        log.log(logging.INFO if ok else logging.WARNING, "%s: callback %s", token, why)
    return status


def _finish(
    store: JobStore, token: str, status: int, result: dict[str, Any] | None, message: str
) -> None:
    for attempt in range(1, FINISH_TRIES + 1):
        try:
            store.finish(token, status, result, message)
            return
        except Exception:
            if attempt == FINISH_TRIES:
                raise
            time.sleep(0.2 * attempt)


def judge_token(token: str) -> int | None:
    """The task's body: this process's store, judge and callback settings."""
    from worker.callbacks import deliver
    from worker.celery_app import callback_settings, current_judge, settings, store

    s = settings()
    cb = callback_settings()
    return run_job(
        token,
        store(),
        current_judge().judge_timed,
        s.max_attempts,
        lambda url, body: deliver(url, body, cb),
    )


judge = shared_task(name="stockade.judge", ignore_result=True)(judge_token)
