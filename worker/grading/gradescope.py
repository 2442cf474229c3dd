"""Gradescope autograder bundles: setup.sh run once per bundle as an image layer (a setup box:
root of a user namespace, the package mirrors only), then run_autograder in a fresh box per
submission, with Gradescope's /autograder layout, and the results.json it wrote read back and
validated. See docs/grading.md."""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from sandbox.config import HostConfig
from sandbox.images.build import Progress
from sandbox.images.setupbox import SetupJob
from sandbox.images.setuplayer import build_setup_image
from sandbox.images.store import LayerStore, cache_key
from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import MIB, BoxSpec, FileIn, Limits
from worker.grading.results import Results, clip, validate
from worker.grading.setup import run_script
from worker.grading.tree import digest

ROOT = "autograder"  # /autograder is a link to /box/autograder in the layout layer
RESULTS = f"/box/{ROOT}/results/results.json"
RESULTS_CAP = 1 * MIB
DEFAULT_IMAGE = "python3"  # a bundle's base image unless it names another
LAYOUT_RECIPE = {"v": 1, "gradescope-layout": "/autograder -> /box/autograder"}
# Gradescope's defaults for an autograder: 10 minutes, 768 MB (its "base" machine).
LIMITS = Limits(
    cpu_time_s=600.0,
    wall_time_s=600.0,
    memory_bytes=768 * MIB,
    pids=256,
    output_bytes=4 * MIB,
    fsize_bytes=256 * MIB,
    scratch_bytes=1024 * MIB,
)


class BundleError(Exception):
    """The bundle cannot be run here; the message says why."""


def is_bundle(files: dict[str, bytes]) -> bool:
    return "run_autograder" in files


def setup_does_something(files: dict[str, bytes]) -> bool:
    """Whether setup.sh holds any command (not only blank lines, comments and a shebang)."""
    text = files.get("setup.sh", b"").decode("utf-8", "replace")
    return any(line.strip() and not line.strip().startswith("#") for line in text.splitlines())


def setup_image(
    store: LayerStore,
    config: HostConfig,
    parent: str,
    files: dict[str, bytes],
    progress: Progress,
    wall_time_s: float = SetupJob.wall_time_s,
) -> str:
    """parent with setup.sh's layer: run as root in a setup box from /autograder/source (the
    bundle's files), as Gradescope runs it, once per bundle content (built under the store's
    lock, so concurrent callers build it once); -> the image's name."""
    recipe = _setup_recipe(files)
    name = setup_image_name(parent, files)
    job = SetupJob(
        command=run_script("./setup.sh"),
        files=tuple(sorted(files.items())),
        wall_time_s=wall_time_s,
    )
    build_setup_image(store, config, parent, name, recipe, job, progress)
    return name


def _setup_recipe(files: dict[str, bytes]) -> dict[str, object]:
    return {"gradescope-setup": 1, "bundle": digest(files)}


def setup_image_name(parent: str, files: dict[str, bytes]) -> str:
    """The name setup_image gives parent with this bundle's setup.sh layer."""
    recipe = _setup_recipe(files)
    return f"gradescope-setup-{digest({parent: json.dumps(recipe).encode()})[:16]}"


def layout_name(parent: str) -> str:
    return f"gradescope-{parent}"[:64]


def layout_image(store: LayerStore, parent: str) -> str:
    """`parent` with one more layer: the /autograder link. Made once, found by content."""
    digests = store.image_digests(parent)
    key = cache_key(digests[-1] if digests else None, LAYOUT_RECIPE)
    name = layout_name(parent)
    with store.locked():
        digest = store.find_cached(key)
        if digest is None:
            tmp = store.new_tmp()
            tree = os.path.join(tmp, "tree")
            os.mkdir(tree, 0o755)
            os.symlink(f"/box/{ROOT}", os.path.join(tree, ROOT))
            meta: dict[str, object] = {"name": name, "parent": digests[-1] if digests else None}
            meta |= {"source": "gradescope-layout", "recipe": LAYOUT_RECIPE, "cache_key": key}
            digest = str(store.commit_layer(tree, meta)["digest"])
            os.rmdir(tmp)
        store.save_image(name, [*digests, digest], source=f"gradescope-layout:{parent}")
    return name


@dataclass
class BundleGrader:
    """One bundle, long-lived beside a Launcher; grade() per submission, from many threads."""

    launcher: Launcher
    files: dict[str, bytes]
    rootfs: str
    title: str = "autograder"
    limits: Limits = LIMITS

    def grade_files(self, submission: dict[str, bytes], name: str) -> tuple[dict[str, Any], str]:
        """(results.json, "") with the bundle's own results when valid; otherwise an error
        result and what was wrong."""
        box_files = [
            *(FileIn(f"{ROOT}/source/{p}", c, 0o755) for p, c in sorted(self.files.items())),
            FileIn(f"{ROOT}/run_autograder", self.files["run_autograder"], 0o755),
            *(FileIn(f"{ROOT}/submission/{p}", c) for p, c in sorted(submission.items())),
            FileIn(f"{ROOT}/submission_metadata.json", _metadata(self.title, name)),
            FileIn(f"{ROOT}/results/.stockade", b""),  # the directory must exist
        ]
        spec = BoxSpec(
            argv=("/bin/bash", "-c", f"cd /{ROOT} && exec /{ROOT}/run_autograder"),
            files=tuple(box_files),
            limits=self.limits,
            rootfs=self.rootfs,
            collect=(RESULTS,),
            collect_max_bytes=RESULTS_CAP,
        )
        got = read_results(self.launcher.run(spec))
        if isinstance(got, Results):
            return got.to_dict(), got.error
        return got, ""


def read_results(r: BoxResult) -> Results | dict[str, Any]:
    """The results.json run_autograder left, validated, or an error saying what was wrong."""
    tail = clip((r.stdout + r.stderr).decode("utf-8", "replace")[-4000:])
    if r.status is Status.XX:
        return _error(f"the autograder's box failed: {r.message}", tail)
    data = r.files.get(RESULTS)
    if data is None:
        why = r.files_refused.get(RESULTS, "missing")
        return _error(
            f"run_autograder left no /autograder/results/results.json ({why}); "
            f"it ended: {r.message}",
            tail,
        )
    try:
        parsed = json.loads(data)
    except ValueError as e:
        return _error(f"results.json is not JSON: {e}", tail)
    problems = validate(parsed)
    if problems:
        return _error(f"results.json breaks Gradescope's format: {'; '.join(problems)}", tail)
    tests = parsed.get("tests", [])
    if "score" not in parsed:  # Gradescope's rule: the tests' scores add up
        parsed["score"] = sum(float(t.get("score", 0)) for t in tests)
    if "max_score" not in parsed:  # Gradescope takes it from the assignment; here, the tests'
        parsed["max_score"] = sum(float(t.get("max_score", 0)) for t in tests)
    return dict(parsed)


def _error(message: str, output: str) -> Results:
    return Results(error=message, output=f"could not be graded: {message}\n{output}".strip())


def _metadata(title: str, name: str) -> bytes:
    now = datetime.datetime.now(datetime.UTC).isoformat()
    data = {
        "id": abs(hash(name)) % 10**9,
        "created_at": now,
        "assignment": {"title": title, "due_date": None, "total_points": None},
        "users": [{"name": PurePosixPath(name).name, "email": None, "id": 0}],
        "submission_method": "upload",
        "previous_submissions": [],
    }
    return json.dumps(data, indent=2).encode()
