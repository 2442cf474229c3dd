"""Setup built by the worker for an uploaded assignment, on the real kernel: two worker processes
grading one new bundle at once build its layer once, and a setup that fails or runs past its
wall limit makes the submission "not graded" with the step and the end of its output."""

from __future__ import annotations

import base64
import io
import json
import secrets
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import redis

from sandbox.images.store import LayerStore
from sandbox.launcher import Launcher
from tests.privileged.test_setup_box import PARENT, _bundle, made, store
from tests.unit.redis_server import redis_url
from worker.grading.tree import digest as tree_digest
from worker.grading.uploaded import UploadedAssignments
from worker.jobs.assignments import AssignmentStore, check, digest
from worker.jobs.model import Submission

__all__ = ["made", "redis_url", "store"]
pytestmark = [pytest.mark.privileged]

# One worker process: builds the bundle's setup layer and prints its progress lines as JSON.
_WORKER = """
import json, sys
from sandbox.config import HostConfig
from sandbox.images.store import LayerStore
from worker.grading.gradescope import setup_image
files = {k: v.encode() for k, v in json.loads(sys.argv[1]).items()}
config = HostConfig.from_env()
lines = []
name = setup_image(LayerStore(config.state_dir), config, sys.argv[2], files, lines.append)
print(json.dumps({"name": name, "lines": lines}))
"""


def test_two_workers_grading_one_new_bundle_build_its_setup_once(
    store: LayerStore, made: list[str], tmp_path: Path
) -> None:
    token = secrets.token_hex(8)  # a bundle no earlier run built
    # Long enough that the second process asks while the first is still building.
    files = _bundle(tmp_path, f"sleep 3\necho {token} > /etc/stockade-wired")
    arg = json.dumps({k: v.decode() for k, v in files.items()})
    before = {str(m["digest"]) for m in store.layers()}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, arg, PARENT], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0
        outs.append(json.loads(out))
    names = {o["name"] for o in outs}
    assert len(names) == 1
    made.extend(names)
    built = [o for o in outs if any("built layer" in line for line in o["lines"])]
    cached = [o for o in outs if any("cached layer" in line for line in o["lines"])]
    assert (len(built), len(cached)) == (1, 1), outs
    # One layer of this bundle, not two copies (other builds may share the store meanwhile).
    ours = tree_digest(files)
    new = {
        str(m["digest"])
        for m in store.layers()
        if str(m["digest"]) not in before and dict(m.get("recipe") or {}).get("bundle") == ours
    }
    assert len(new) == 1, new
    (image,) = names
    assert store.image_digests(image)[-1] in new
    top = Path(store.layer_dir(store.image_digests(image)[-1]))
    assert (top / "etc" / "stockade-wired").read_text() == f"{token}\n"


def _uploaded(
    redis_url: str, files: dict[str, bytes], image: str | None = None
) -> tuple[AssignmentStore, str]:
    """The bundle as POST /api/v1/assignments keeps it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    info = check(files, None, set(), image)
    kept = AssignmentStore(redis.Redis.from_url(redis_url), "t:", 3600)
    assignment = digest(files, info["due_date"], info["image"])
    assert kept.put(assignment, buf.getvalue(), info, "owner", "client", 10)
    return kept, assignment


def _submission(assignment: str) -> Submission:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("answer.txt", "42\n")
    return Submission(
        assignment=assignment, additional_files=base64.b64encode(buf.getvalue()).decode()
    )


def test_a_failing_setup_is_not_graded_with_the_step_and_its_output(
    store: LayerStore, launcher: Launcher, redis_url: str, tmp_path: Path
) -> None:
    before = {str(m["digest"]) for m in store.layers()}
    files = _bundle(
        tmp_path, f"echo {secrets.token_hex(4)} > /etc/x\necho 'E: no cowsay' >&2\nexit 4"
    )
    kept, assignment = _uploaded(redis_url, files)
    graders = UploadedAssignments(launcher, {}, kept, 8 << 20, 1 << 20, setup_wall_s=120)
    outcome = graders.grade(_submission(assignment))
    assert outcome.judge0_status() == 13
    assert outcome.message.startswith("setup.sh: ") and "status 4" in outcome.message
    assert "E: no cowsay" in outcome.results["output"]
    assert outcome.results["score"] == 0 and outcome.results["extra_data"]["error"]
    # The next submission is told at once, not made to wait for the same failure again.
    start = time.monotonic()
    again = graders.grade(_submission(assignment))
    assert time.monotonic() - start < 1.0
    assert "not run again yet" in again.message and "E: no cowsay" in again.results["output"]
    assert {str(m["digest"]) for m in store.layers()} == before


def test_a_setup_past_its_wall_limit_is_stopped_and_not_graded(
    store: LayerStore, launcher: Launcher, redis_url: str, tmp_path: Path
) -> None:
    files = _bundle(tmp_path, f"echo started {secrets.token_hex(4)}\nsleep 600")
    kept, assignment = _uploaded(redis_url, files)
    graders = UploadedAssignments(launcher, {}, kept, 8 << 20, 1 << 20, setup_wall_s=3)
    start = time.monotonic()
    outcome = graders.grade(_submission(assignment))
    took = time.monotonic() - start
    assert outcome.judge0_status() == 13 and outcome.message.startswith("setup.sh: ")
    assert "stopped after 3s of wall time" in outcome.results["output"]
    assert took < 30, took  # the job's slot is held for the setup box's wall limit, no longer


def test_a_bundle_on_an_image_this_worker_lacks_is_not_graded(
    launcher: Launcher, redis_url: str, tmp_path: Path
) -> None:
    # As kept by a service whose profiles list an image this worker's store has not built.
    files, image = _bundle(tmp_path, "true"), f"img-{secrets.token_hex(4)}"
    info = {**check(files, None, set()), "image": image}
    kept = AssignmentStore(redis.Redis.from_url(redis_url), "t:", 3600)
    assignment = digest(files, "", image)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    assert kept.put(assignment, buf.getvalue(), info, "owner", "client", 10)
    graders = UploadedAssignments(launcher, {}, kept, 8 << 20, 1 << 20)
    outcome = graders.grade(_submission(assignment))
    assert outcome.judge0_status() == 13
    assert f"image: no image {image!r} on this worker" in outcome.message
