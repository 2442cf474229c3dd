"""A class at a time: submissions graded in parallel on the launcher's slots, cached by content."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sandbox.errors import SandboxError, SpecError
from worker.grading import cache
from worker.grading.assignment import Assignment
from worker.grading.results import Results
from worker.grading.runner import Grader
from worker.grading.tree import TreeError, digest, read_tree

Progress = Callable[[int, int, "Graded"], None]


class SubmissionGrader(Protocol):
    """Grades one submission's files: (results.json, "") or (an error result, the reason)."""

    @property
    def rootfs(self) -> str: ...

    def grade_files(self, files: dict[str, bytes], name: str) -> tuple[dict[str, Any], str]: ...


@dataclass
class NativeGrader:
    """An assignment.toml's grader in SubmissionGrader's shape."""

    grader: Grader
    assignment: Assignment

    @property
    def rootfs(self) -> str:
        return self.grader.rootfs

    def grade_files(self, files: dict[str, bytes], name: str) -> tuple[dict[str, Any], str]:
        results = self.grader.grade(self.assignment, files)
        return results.to_dict(), results.error


@dataclass(frozen=True)
class Graded:
    """One submission's outcome: its results.json, or why it could not be graded."""

    submission: str
    results: dict[str, Any]
    error: str = ""
    cached: bool = False


def grade_all(
    grader: SubmissionGrader,
    assignment_digest: str,
    submissions: Sequence[Path],
    jobs: int,
    store: cache.ResultCache | None = None,
    progress: Progress | None = None,
) -> list[Graded]:
    """Every submission, in the order given; `progress` is called as each one finishes."""
    done = 0
    lock = threading.Lock()

    def one(path: Path) -> Graded:
        nonlocal done
        graded = _grade_one(grader, assignment_digest, path, store)
        with lock:
            done += 1
            if progress is not None:
                progress(done, len(submissions), graded)
        return graded

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        return list(pool.map(one, submissions))


def _grade_one(
    grader: SubmissionGrader,
    assignment_digest: str,
    path: Path,
    store: cache.ResultCache | None,
) -> Graded:
    name = str(path)
    try:
        files = read_tree(path)
    except TreeError as e:
        return _failed(name, str(e))
    k = cache.key(assignment_digest, digest(files), grader.rootfs)
    hit = store.get(k) if store is not None else None
    if hit is not None:
        return Graded(name, hit, cached=True)
    try:
        data, error = grader.grade_files(files, name)
    except (SandboxError, SpecError) as e:  # the assignment's image unknown here, say
        return _failed(name, f"a box could not start: {e}")
    if error:
        return Graded(name, data, error)
    if store is not None:
        store.put(k, data)
    return Graded(name, data)


def _failed(name: str, error: str) -> Graded:
    return Graded(
        name, Results(error=error, output=f"could not be graded: {error}").to_dict(), error
    )
