"""Uploaded assignments: checked as archives and by the grading loader, kept in Redis by digest,
and what a student-facing caller may see of an assignment and of a submission's results."""

from __future__ import annotations

import datetime
import hashlib
import posixpath
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.images.build import load_recipes
from sandbox.images.store import LayerError
from worker.grading.assignment import FILE_NAME, AssignmentError, due_date_of, load_assignment
from worker.grading.fields import FieldError
from worker.grading.gradescope import DEFAULT_IMAGE, is_bundle
from worker.grading.setup import SetupError, check_setup
from worker.grading.tree import LIMITS as SUBMISSION_LIMITS
from worker.jobs.archives import ArchiveError, ArchiveLimits, extract_zip
from worker.jobs.uploads import UploadStore

DIGEST = re.compile(r"^[0-9a-f]{64}$")
NATIVE, GRADESCOPE = "native", "gradescope"
_TAG = b"stockade-assignment:"
_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\[\]]*): (.*)$", re.DOTALL)


class UploadError(ValueError):
    """The upload breaks a rule: `field` is the field of the request or of the assignment."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


def unpack(data: bytes, max_bytes: int) -> dict[str, bytes]:
    """The assignment's files by path below its assignment.toml (or run_autograder): the
    checks every archive gets (zip slip, links, bombs), then the root found."""
    limits = ArchiveLimits(
        max_files=SUBMISSION_LIMITS.max_files,
        max_total_bytes=SUBMISSION_LIMITS.max_total_bytes,
        max_archive_bytes=max_bytes,
    )
    try:
        files = extract_zip(data, limits)
    except ArchiveError as e:
        raise UploadError("assignment", str(e)) from None
    if _is_root(files):
        return files
    tops = {path.split("/", 1)[0] for path in files}
    # Zipping a folder puts everything under its name: one such folder is the assignment.
    if len(tops) == 1:
        top = tops.pop()
        inner = {posixpath.relpath(p, top): b for p, b in files.items() if p.startswith(f"{top}/")}
        if _is_root(inner):
            return inner
    raise UploadError(
        "assignment",
        f"no {FILE_NAME} (native) nor run_autograder (a Gradescope bundle) at the top of the "
        "zip or in its one top-level folder",
    )


def _is_root(files: dict[str, bytes]) -> bool:
    return FILE_NAME in files or is_bundle(files)


def submission_files(data: bytes) -> dict[str, bytes]:
    """A graded submission's files, with the grader's caps and every archive check."""
    try:
        return extract_zip(data, SUBMISSION_LIMITS)
    except ArchiveError as e:
        raise UploadError("files", str(e)) from None


def digest(files: dict[str, bytes], due_date: str, image: str = "") -> str:
    """The assignment's id: of its files' paths and contents, its due date and a bundle's
    image, so that the same assignment zipped twice is one assignment and another due date or
    image is another. The default image adds nothing: ids made before `image` stay valid."""
    named = b"" if image in ("", DEFAULT_IMAGE) else b"image:" + image.encode() + b"\0"
    h = hashlib.sha256(_TAG + due_date.encode() + b"\0" + named)
    for path in sorted(files):
        name, content = path.encode(), files[path]
        h.update(len(name).to_bytes(8, "big") + name + len(content).to_bytes(8, "big"))
        h.update(content)
    return h.hexdigest()


def known_images() -> list[str]:
    """The images a bundle may name: those profiles/images.toml builds (the layer store's)."""
    try:
        return sorted(load_recipes())
    except LayerError:
        return [DEFAULT_IMAGE]


def check_image(image: Any, native: bool) -> str:
    """The upload's `image` (a bundle's base image), DEFAULT_IMAGE when not given."""
    if image is None:
        return "" if native else DEFAULT_IMAGE
    if native:
        raise UploadError(
            "image", f"only a Gradescope bundle takes an image ({FILE_NAME} names its own)"
        )
    names = known_images()
    if not isinstance(image, str) or image not in names:
        raise UploadError("image", f"must be one of the images: {', '.join(names)}")
    return image


def check(
    files: dict[str, bytes], due_date: Any, languages: set[str], image: Any = None
) -> dict[str, Any]:
    """The summary GET /api/v1/assignments/<id> shows, from the grading module's own loader;
    UploadError naming the field and the rule otherwise. `due_date` (the upload's, or None)
    overrides assignment.toml's; `languages` are the keys the service serves; `image` (the
    upload's, or None) is a bundle's base image."""
    try:
        override = None if due_date is None else due_date_of(due_date, "due_date")
    except FieldError as e:
        raise UploadError(e.field, e.rule) from None
    base = check_image(image, FILE_NAME in files)
    if FILE_NAME not in files:
        # setup.sh runs on the worker, once per bundle, in a setup box (docs/grading.md).
        return {
            "format": GRADESCOPE,
            "name": "autograder",
            "image": base,
            "language": "",
            "max_score": None,
            "visibility": "visible",
            "due_date": override or "",
            "tests": [],
        }
    try:
        a = load_assignment(Path(""), files)
    except AssignmentError as e:
        # "assignment.toml: FIELD: RULE" names a field; a TOML syntax error names none.
        rest = str(e).removeprefix(f"{FILE_NAME}: ")
        named = _FIELD.match(rest)
        if named is None:
            raise UploadError(FILE_NAME, rest) from None
        raise UploadError(f"{FILE_NAME}: {named[1]}", named[2]) from None
    try:
        # [setup] itself runs on the worker, once per content, in a setup box.
        check_setup(a)
    except SetupError as e:
        what, _, rule = str(e).partition(": ")
        raise UploadError(f"{FILE_NAME}: {what}", rule) from None
    if a.language and a.language not in languages:
        raise UploadError(f"{FILE_NAME}: language", f"no language {a.language!r} on this service")
    return {
        "format": NATIVE,
        "name": a.name,
        "language": a.language,
        "max_score": a.max_score,
        "visibility": a.visibility,
        "due_date": a.due_date if override is None else override,
        "tests": [
            {
                "number": t.number,
                "name": t.name,
                "kind": t.kind,
                "max_score": t.points,
                "visibility": t.visibility,
            }
            for t in a.tests
        ],
    }


class AssignmentStore(UploadStore):
    """Assignments in Redis: {prefix}assignment:<digest> (zip, summary, published) and
    {prefix}assignment:<digest>:owners (the digests of the tokens that uploaded it)."""

    kind = "assignment"

    def published(self, assignment: str) -> bool:
        return self.redis.hget(self._key(assignment), "published") is not None

    def publish(self, assignment: str) -> None:
        self.redis.hsetnx(self._key(assignment), "published", repr(time.time()))


# --- What a student-facing caller sees ---------------------------------------------------------


@dataclass(frozen=True)
class Audience:
    """Whether the caller is staff (sees everything), and the clock and publication the
    after_due_date and after_published visibilities wait for."""

    staff: bool
    due_date: str
    published: bool
    now: float

    def sees(self, visibility: str) -> bool:
        if self.staff or visibility == "visible":
            return True
        if visibility == "after_due_date":
            return bool(self.due_date) and self.now >= _epoch(self.due_date)
        if visibility == "after_published":
            return self.published
        return False  # hidden, or anything unknown


def _epoch(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp()


def shown_summary(info: dict[str, Any], who: Audience) -> dict[str, Any]:
    """The assignment as `who` may see it: the tests it may not see left out, and counted."""
    tests = [t for t in info.get("tests", []) if who.sees(str(t.get("visibility")))]
    out = {**info, "tests": tests, "withheld_tests": len(info.get("tests", [])) - len(tests)}
    if out["withheld_tests"] and info.get("max_score") is not None:
        out["max_score"] = sum(float(t["max_score"]) for t in tests)
    return out


def shown_results(results: dict[str, Any], who: Audience) -> dict[str, Any]:
    """results.json as `who` may see it. A test takes the top-level visibility unless it has
    its own (Gradescope's rule). With any test left out, score and max_score are those of the
    tests shown, so that a total cannot give a hidden score away."""
    top = str(results.get("visibility", "visible"))
    tests = list(results.get("tests") or [])
    shown = [t for t in tests if who.sees(str(t.get("visibility", top)))]
    out = {**results, "tests": shown}
    withheld = len(tests) - len(shown)
    if not who.sees(top):
        out["output"] = ""
    if withheld or not who.sees(top):
        out["score"] = round(sum(float(t.get("score", 0)) for t in shown), 4)
        out["max_score"] = round(sum(float(t.get("max_score", 0)) for t in shown), 4)
    if withheld:
        out["extra_data"] = {**(results.get("extra_data") or {}), "withheld_tests": withheld}
    return out
