"""Results already graded, by the content of the assignment and of the submission."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from worker.grading.results import validate

# Part of every key: a change to how tests are scored must not reuse older scores.
GRADER_VERSION = "1"


def key(assignment_digest: str, submission_digest: str, rootfs: str) -> str:
    text = f"{GRADER_VERSION}\0{assignment_digest}\0{submission_digest}\0{rootfs}"
    return hashlib.sha256(text.encode()).hexdigest()


class ResultCache:
    """One results.json per key in a directory of the operator's; a damaged entry is a miss."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, k: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.directory / f"{k}.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or validate(data):
            return None
        return data

    def put(self, k: str, results: dict[str, Any]) -> None:
        """Written to a temporary file and renamed: a reader never sees half an entry."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(results, f)
        os.replace(tmp, self.directory / f"{k}.json")
