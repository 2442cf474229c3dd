"""Graded submissions from the queue: the uploaded assignment fetched from Redis by its digest,
prepared once per worker process, and each submission's files graded in fresh boxes."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError, SpecError
from sandbox.images.store import LayerError, LayerStore
from sandbox.launcher import Launcher
from sandbox.spec import strongest
from worker.grading.assignment import FILE_NAME, AssignmentError, load_assignment
from worker.grading.batch import NativeGrader, SubmissionGrader
from worker.grading.cli import DEFAULT_BUNDLE_IMAGE
from worker.grading.gradescope import BundleError, BundleGrader, layout_image
from worker.grading.results import Results, clip
from worker.grading.runner import Grader, GradingError
from worker.jobs.assignments import AssignmentStore, UploadError, digest, submission_files, unpack
from worker.jobs.languages import Language
from worker.jobs.model import Submission

log = logging.getLogger("stockade.worker")
_KEEP_GRADERS = 8  # assignments whose grader stays prepared in one worker process
GRADED, NOT_GRADED = 3, 13  # the record's status ids: Accepted (graded) or Internal Error


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
    def failed(cls, why: str) -> GradeOutcome:
        return cls(Results(error=why, output=f"could not be graded: {why}").to_dict(), why)


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
    _graders: OrderedDict[str, SubmissionGrader] = field(default_factory=OrderedDict)
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
        if digest(files, str(info.get("due_date", ""))) != assignment:
            raise UploadError("assignment", "the stored zip does not match its id")
        grader: SubmissionGrader
        if FILE_NAME in files:
            native = Grader(self.launcher, self.languages, self.rootfs)
            ready = native.prepare(load_assignment(Path(""), files), _setup_log)
            grader = NativeGrader(native, ready)
        else:
            image = layout_image(LayerStore(self.launcher.config.state_dir), DEFAULT_BUNDLE_IMAGE)
            grader = BundleGrader(self.launcher, files, image, str(info.get("name", "autograder")))
        with self._guard:
            self._graders[assignment] = grader
            while len(self._graders) > _KEEP_GRADERS:
                self._graders.popitem(last=False)
        return grader


def _setup_log(line: str) -> None:
    log.info("assignment setup: %s", line.strip())


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
