"""Graded submissions from the queue: the uploaded assignment fetched from Redis by its digest,
prepared once per worker process, and each submission's files graded in fresh boxes."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError, SpecError
from sandbox.images.setupbox import SetupJob
from sandbox.images.store import LayerError, LayerStore
from sandbox.launcher import Launcher
from sandbox.spec import strongest
from worker.grading.assignment import FILE_NAME, AssignmentError, load_assignment
from worker.grading.batch import NativeGrader, SubmissionGrader
from worker.grading.gradescope import (
    DEFAULT_IMAGE,
    BundleError,
    BundleGrader,
    layout_image,
    setup_does_something,
    setup_image,
)
from worker.grading.gradescope import LIMITS as BUNDLE_LIMITS
from worker.grading.results import Results, clip
from worker.grading.runner import Grader, GradingError
from worker.jobs.assignments import AssignmentStore, UploadError, digest, submission_files, unpack
from worker.jobs.languages import Language
from worker.jobs.model import Submission

log = logging.getLogger("stockade.worker")
_KEEP_GRADERS = 8  # assignments whose grader stays prepared in one worker process
GRADED, NOT_GRADED = 3, 13  # the record's status ids: Accepted (graded) or Internal Error
SETUP_LOG_LINES = 40  # of a failed setup's output, in the submission's result
SETUP_LOG_BYTES = 6144  # of those lines, at most (their end), with room for why in OUTPUT_BYTES
MIN_SETUP_WALL_S = 60
RETRY_SETUP_S = 60.0  # a failed setup is tried again (a mirror may be back) after this long


@dataclass(frozen=True)
class GradeOutcome:
    """What run_job stores of a graded submission: its results.json; `message` is why it
    could not be graded ("" when it was, whatever its score)."""

    results: dict[str, Any]
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.results)

    def judge0_status(self) -> int:
        return NOT_GRADED if self.message else GRADED

    @classmethod
    def failed(cls, why: str, log: str = "") -> GradeOutcome:
        """Not graded, and why; `log` (a setup's output, its end) goes above the reason."""
        tail = log.rstrip().encode()
        if len(tail) > SETUP_LOG_BYTES:  # its end says what went wrong: keep that
            tail = b"[...]\n" + tail[-SETUP_LOG_BYTES:]
        output = f"{tail.decode('utf-8', 'ignore')}\ncould not be graded: {why}".lstrip()
        return cls(Results(error=why, output=clip(output)).to_dict(), why)


class SetupFailed(Exception):
    """The assignment's setup (setup.sh, or [setup] apt, pip or script) could not be built:
    the message names the step; `log` is the end of the setup's output."""

    def __init__(self, why: str, log: str) -> None:
        super().__init__(why)
        self.log = log


class SetupLog:
    """A setup's progress lines: logged, and the last ones kept for a failure's result."""

    def __init__(self, keep: int = SETUP_LOG_LINES) -> None:
        self.lines: deque[str] = deque(maxlen=keep)

    def __call__(self, line: str) -> None:
        log.info("assignment setup: %s", line.strip())
        self.lines.append(line.strip().removeprefix("| "))

    def tail(self) -> str:
        return "\n".join(self.lines)


def setup_wall_s(visibility_timeout_s: int) -> float:
    """The wall-time limit of a setup box built for a queued job: the setup and one bundle's
    run must end within the broker's visibility timeout, past which it gives the job to
    another worker; at least a minute, at most a setup box's own limit (30 minutes)."""
    room = visibility_timeout_s - BUNDLE_LIMITS.wall_time_s
    return float(max(MIN_SETUP_WALL_S, min(SetupJob.wall_time_s, room)))


@dataclass
class UploadedAssignments:
    """One worker process's grader of `assignment` submissions."""

    launcher: Launcher
    languages: dict[int, Language]
    store: AssignmentStore
    max_bytes: int
    max_result_bytes: int
    rootfs: str = "host"
    min_tier: str = ""
    setup_wall_s: float = SetupJob.wall_time_s
    _graders: OrderedDict[str, SubmissionGrader] = field(default_factory=OrderedDict)
    # Setups that failed lately: (when, why, log); not run again for every submission.
    _failed: dict[str, tuple[float, str, str]] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def grade_timed(self, sub: Submission) -> tuple[GradeOutcome, dict[str, float]]:
        start = time.monotonic()
        outcome = self.grade(sub)
        return outcome, {"run_s": time.monotonic() - start}

    def grade(self, sub: Submission) -> GradeOutcome:
        if strongest(self.min_tier) not in ("", "container"):
            # The grader's boxes run in the container tier (or a language's own): never
            # below a minimum the operator set, so not at all under one.
            return GradeOutcome.failed(
                f"grading runs in the container tier; this worker's STOCKADE_MIN_TIER is "
                f"{self.min_tier}"
            )
        try:
            grader = self._grader(sub.assignment)
        except SetupFailed as e:
            return GradeOutcome.failed(str(e), e.log)
        except (AssignmentError, BundleError, GradingError, LayerError, UploadError) as e:
            return GradeOutcome.failed(f"assignment: {e}")
        except (SandboxError, SpecError, OSError) as e:
            return GradeOutcome.failed(f"the assignment could not be prepared: {e}")
        try:
            files = submission_files(base64.b64decode(sub.additional_files, validate=True))
        except (binascii.Error, ValueError) as e:
            return GradeOutcome.failed(f"files: {e}")
        try:
            data, error = grader.grade_files(files, "submission")
        except (SandboxError, SpecError) as e:
            return GradeOutcome.failed(f"a box could not start: {e}")
        return GradeOutcome(fit(data, self.max_result_bytes), error)

    def _grader(self, assignment: str) -> SubmissionGrader:
        with self._guard:
            if assignment in self._graders:
                self._graders.move_to_end(assignment)
                return self._graders[assignment]
        data = self.store.zip(assignment)
        if data is None:
            raise UploadError(
                "assignment",
                "expired or never uploaded (STOCKADE_PROBLEM_TTL_S); upload it again and resubmit",
            )
        files = unpack(data, self.max_bytes)
        info = self.store.summary(assignment) or {}
        if digest(files, str(info.get("due_date", "")), str(info.get("image", ""))) != assignment:
            raise UploadError("assignment", "the stored zip does not match its id")
        now = time.monotonic()
        with self._guard:
            for key in [k for k, v in self._failed.items() if now - v[0] >= RETRY_SETUP_S]:
                del self._failed[key]
            failed = self._failed.get(assignment)
        if failed is not None:
            why = f"{failed[1]} (this setup failed under {RETRY_SETUP_S:g}s ago: not run again yet)"
            raise SetupFailed(why, failed[2])
        progress = SetupLog()
        try:
            grader = self._prepare(files, info, progress)
        except SetupFailed as e:
            with self._guard:
                self._failed[assignment] = (time.monotonic(), str(e), e.log)
            raise
        with self._guard:
            self._graders[assignment] = grader
            while len(self._graders) > _KEEP_GRADERS:
                self._graders.popitem(last=False)
        return grader

    def _prepare(
        self, files: dict[str, bytes], info: dict[str, Any], progress: SetupLog
    ) -> SubmissionGrader:
        """The assignment's grader, its setup built first when the layer store lacks it (under
        the store's lock: concurrent jobs, in this process or another, build it once)."""
        if FILE_NAME in files:
            native = Grader(self.launcher, self.languages, self.rootfs, self.setup_wall_s)
            try:
                ready = native.prepare(load_assignment(Path(""), files), progress)
            except GradingError as e:
                if str(e).startswith("setup."):
                    raise SetupFailed(str(e), progress.tail()) from None
                raise
            return NativeGrader(native, ready)
        store = LayerStore(self.launcher.config.state_dir)
        image = str(info.get("image") or DEFAULT_IMAGE)
        if image not in store.images():
            raise BundleError(f"image: no image {image!r} on this worker (stockade layers build)")
        if setup_does_something(files):
            try:
                image = setup_image(
                    store, self.launcher.config, image, files, progress, self.setup_wall_s
                )
            except (LayerError, SandboxError, OSError) as e:
                raise SetupFailed(f"setup.sh: {e}", progress.tail()) from None
        name = str(info.get("name", "autograder"))
        return BundleGrader(self.launcher, files, layout_image(store, image), name)


def fit(results: dict[str, Any], cap: int) -> dict[str, Any]:
    """results.json within `cap` bytes of JSON (with room for timings): the tests' outputs
    cut, longest first in effect, as feedback rather than logs; scores are never cut."""
    budget = max(1024, cap - 1024)
    limit = max((len(str(t.get("output", ""))) for t in results.get("tests", [])), default=0)
    out = results
    while len(json.dumps(out)) > budget and limit > 0:
        limit //= 2
        tests = [{**t, "output": clip(str(t.get("output", "")), limit)} for t in out["tests"]]
        out = {**out, "tests": tests, "output": clip(str(out.get("output", "")), limit)}
    return out
