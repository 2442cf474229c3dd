"""The judge task's bookkeeping with a fake store: attempts, IE on crashes, timings, callback."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from worker.jobs.model import JudgeResult, Submission, Verdict
from worker.jobs.store import Record
from worker.tasks import run_job


class FakeStore:
    def __init__(self, rec: Record | None) -> None:
        self.rec = rec
        self.finished: list[tuple[int, dict[str, Any] | None, str]] = []

    def start(self, token: str) -> Record | None:
        if self.rec is None:
            return None
        if not self.rec.final:
            self.rec = replace(
                self.rec, status_id=2, attempts=self.rec.attempts + 1, started_at=time.time()
            )
        return self.rec

    def finish(
        self, token: str, status_id: int, result: dict[str, Any] | None, message: str = ""
    ) -> None:
        self.finished.append((status_id, result, message))


def record(attempts: int = 0, status_id: int = 1, callback: str | None = None) -> Record:
    now = time.time()
    return Record(
        "tok", Submission("print(1)", 71), status_id, None, "", now - 0.5, None, None,
        attempts, callback, {},
    )  # fmt: skip


def accepted(sub: Submission) -> tuple[JudgeResult, dict[str, float]]:
    return JudgeResult(Verdict.AC, 1.0, 1.0), {"compile_s": 0.0, "run_s": 0.01}


def test_judges_and_records_timings() -> None:
    store = FakeStore(record())
    assert run_job("tok", store, accepted, 3) == 3
    status, result, _ = store.finished[0]
    assert status == 3 and result is not None
    t = result["timings"]
    assert t["queue_wait_s"] >= 0.5 and t["run_s"] == 0.01 and "judge_s" in t
    assert result["attempts"] == 1


def test_gives_up_after_max_attempts() -> None:
    store = FakeStore(record(attempts=3))
    assert run_job("tok", store, lambda s: __import__("sys").exit(9), 3) == 13
    status, _, message = store.finished[0]
    assert status == 13 and "kept killing its worker" in message and "3 attempts" in message


def test_exception_is_internal_error() -> None:
    def broken(sub: Submission) -> tuple[JudgeResult, dict[str, float]]:
        raise OSError("no cgroup")

    store = FakeStore(record())
    assert run_job("tok", store, broken, 3) == 13
    assert "OSError: no cgroup" in store.finished[0][2]


def test_final_and_unknown_records_are_skipped() -> None:
    assert run_job("tok", FakeStore(None), accepted, 3) is None
    store = FakeStore(record(status_id=3))
    assert run_job("tok", store, accepted, 3) == 3 and not store.finished


def test_callback_is_queued_after_the_verdict_is_stored_never_delivered_here() -> None:
    """The judging task only queues the token (worker.callback_queue delivers it), after
    finish(): a receiver can never hold the judging slot."""
    store = FakeStore(record(callback="http://h/cb"))
    queued: list[tuple[str, int]] = []
    run_job("tok", store, accepted, 3, lambda token: queued.append((token, len(store.finished))))
    assert queued == [("tok", 1)]
    run_job("tok", FakeStore(record()), accepted, 3, lambda token: queued.append((token, 0)))
    assert len(queued) == 1  # no callback_url, nothing queued
