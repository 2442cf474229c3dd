"""A worker's per-process state: one Launcher and Judge per process, its Store, the
self-tests' outcome, the heartbeat, and the Celery signal handlers that set them up."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import redis
from celery import current_app

from sandbox.launcher import Launcher
from worker.callbacks import CallbackSettings
from worker.grading.uploaded import GradeOutcome, UploadedAssignments, setup_wall_s
from worker.jobs.assignments import AssignmentStore
from worker.jobs.heartbeat import Heartbeat
from worker.jobs.languages import load_languages
from worker.jobs.model import JudgeResult, Submission
from worker.jobs.problems import ProblemStore
from worker.jobs.settings import (
    MAX_PACKAGE_BYTES,
    PACKAGE_MAX_MEMORY_MIB,
    PROBLEM_CACHE_DIR,
    PROBLEM_TTL_S,
    WorkerSettings,
)
from worker.jobs.store import Store
from worker.problems.uploaded import UploadedProblems, default_cache
from worker.selftest import self_test_all
from worker.timing import TimedJudge

log = logging.getLogger("stockade.worker")

_state_lock = threading.Lock()
_enabled: set[int] | None = None  # set by the self-tests in the parent, inherited by children
_launcher: Launcher | None = None
_judge: TimedJudge | None = None
_uploaded: UploadedProblems | None = None
_assignments: UploadedAssignments | None = None
_store: Store | None = None
_callbacks: CallbackSettings | None = None
_heartbeat: Heartbeat | None = None


def settings() -> WorkerSettings:
    s = getattr(current_app.conf, "stockade", None)
    return s if isinstance(s, WorkerSettings) else WorkerSettings.from_env()


def current_judge() -> TimedJudge:
    """This process's Judge (created on first use when worker_process_init did not run)."""
    global _launcher, _judge
    with _state_lock:
        if _judge is None:
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
                max_runs=s.max_runs,
                kept_output_per_case=s.kept_output_per_case,
                kept_output_total=s.kept_output_total,
            )
        return _judge


def uploaded_problems() -> UploadedProblems:
    """This process's judge of submissions against uploaded packages (sharing its Judge's
    launcher and languages)."""
    global _uploaded
    judge, client = current_judge(), store().redis  # each takes the lock itself
    with _state_lock:
        if _uploaded is None or _uploaded.launcher is not judge.launcher:
            s = settings()
            cache = PROBLEM_CACHE_DIR.as_str()
            _uploaded = UploadedProblems(
                judge.launcher,
                judge.languages,
                ProblemStore(client, s.prefix, PROBLEM_TTL_S.as_int()),
                Path(cache) if cache else default_cache(),
                MAX_PACKAGE_BYTES.as_int(),
                PACKAGE_MAX_MEMORY_MIB.as_int(),
                s.max_runs,
                rootfs=s.rootfs,
                min_tier=s.min_tier,
                kept_output_per_case=s.kept_output_per_case,
                kept_output_total=s.kept_output_total,
            )
        return _uploaded


def uploaded_assignments() -> UploadedAssignments:
    """This process's grader of submissions against uploaded assignments (sharing its
    Judge's launcher and languages)."""
    global _assignments
    judge, client = current_judge(), store().redis  # each takes the lock itself
    with _state_lock:
        if _assignments is None or _assignments.launcher is not judge.launcher:
            s = settings()
            _assignments = UploadedAssignments(
                judge.launcher,
                judge.languages,
                AssignmentStore(client, s.prefix, PROBLEM_TTL_S.as_int()),
                MAX_PACKAGE_BYTES.as_int(),
                s.max_result_bytes,
                rootfs=s.rootfs,
                min_tier=s.min_tier,
                setup_wall_s=setup_wall_s(s.visibility_timeout_s),
            )
        return _assignments


def judge_any(sub: Submission) -> tuple[JudgeResult | GradeOutcome, dict[str, float]]:
    """A graded submission, one against an uploaded package, or one with its own cases."""
    if sub.assignment:
        return uploaded_assignments().grade_timed(sub)
    if sub.problem:
        return uploaded_problems().judge_timed(sub)
    return current_judge().judge_timed(sub)


def store() -> Store:
    """This process's Store (its connection pool is not shared across fork)."""
    global _store
    with _state_lock:
        if _store is None:
            s = settings()
            _store = Store(s.redis_url, s.prefix, s.ttl_s)
        return _store


def callback_settings() -> CallbackSettings:
    global _callbacks
    with _state_lock:
        if _callbacks is None:
            _callbacks = CallbackSettings.from_env()
        return _callbacks


def close_judge() -> None:
    global _launcher, _judge, _uploaded, _assignments
    with _state_lock:
        if _launcher is not None:
            _launcher.close()
        _launcher = None
        _judge = None
        _uploaded = None
        _assignments = None


def run_self_tests(s: WorkerSettings) -> dict[int, str]:
    """Every language's self-test in a launcher of its own (closed before the pool forks),
    judged with this worker's rootfs and minimum tier, as its submissions will be: the
    enabled ones are served, the others are logged and listed in Redis."""
    global _enabled
    langs = load_languages()
    if not s.self_test:
        _enabled = set(langs)
        disabled: dict[int, str] = {}
    else:
        with Launcher() as launcher:
            outcome = self_test_all(launcher, s.rootfs, langs, min_tier=s.min_tier)
        _enabled = {i for i, (ok, _) in outcome.items() if ok}
        disabled = {i: why for i, (ok, why) in outcome.items() if not ok}
    for i, why in sorted(disabled.items()):
        log.warning("language %d (%s) disabled: %s", i, langs[i].name, why)
    log.info("serving %d languages, %d disabled", len(_enabled), len(disabled))
    _publish_disabled(s, disabled)
    return disabled


def _publish_disabled(s: WorkerSettings, disabled: dict[int, str]) -> None:
    """The ids go to the store's set (the API's /languages and /metrics); the reasons go
    only to the log (run_self_tests above)."""
    try:
        store = Store(s.redis_url, s.prefix, s.ttl_s)
        store.set_disabled_languages(sorted(disabled))
        store.redis.close()
    except redis.RedisError as e:
        log.error("could not store the disabled languages in Redis: %s", e)


def on_worker_init(**_: Any) -> None:
    run_self_tests(settings())


def on_process_init(**_: Any) -> None:
    current_judge()


def on_process_shutdown(**_: Any) -> None:
    close_judge()


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    """The heartbeat starts once the self-tests are done and the pool is up."""
    global _heartbeat
    s = settings()
    hostname = str(getattr(sender, "hostname", "") or os.uname().nodename)
    controller = getattr(sender, "controller", None)
    concurrency = int(getattr(controller, "concurrency", 0) or 1)
    _heartbeat = Heartbeat(s.redis_url, s.prefix, hostname, concurrency)
    _heartbeat.start()


def on_worker_shutdown(**_: Any) -> None:
    global _heartbeat
    if _heartbeat is not None:
        _heartbeat.stop()
        _heartbeat = None
