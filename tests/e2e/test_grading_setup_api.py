"""Grading through the API when the assignment installs what its tests need: the gssetup bundle
(its setup.sh installs a Debian package and a pip requirement from the host's mirrors) uploaded
on a named image, its setup built once by the worker for two submissions at once and found
again by a third, all graded with their exact score; pysetup's [setup] pip and script the same
way; a setup that fails is "not graded" and says why. A setup takes seconds to a minute (apt
and pip from the host's mirrors)."""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.config import HostConfig
from sandbox.images.store import LayerStore
from tests.e2e.conftest import Stack
from tests.e2e.test_grading_api import OWNER, STUDENT, scores, zipped
from worker.grading.gradescope import layout_name, setup_image_name
from worker.grading.tree import digest, read_tree

GSSETUP = Path(__file__).resolve().parents[1] / "assignments" / "gssetup"
PYSETUP = GSSETUP.parent / "pysetup"
IMAGE = "python3"
SETUP_BOUND_S = 300.0  # the worker's setup wall limit under the default visibility timeout


@pytest.fixture
def made() -> Iterator[list[str]]:
    """Images the worker builds for this test's bundles: removed afterwards, with the layers
    no other image keeps."""
    names: list[str] = []
    yield names
    store = LayerStore(HostConfig.from_env().state_dir)
    with store.locked():
        tops = set()
        for name in names:
            if name in store.images():
                tops.add(store.image_digests(name)[-1])
                store.rm_image(name)
        kept = {d for i in store.images() for d in store.image_digests(i)}
        for layer in tops - kept:
            os.unlink(store.layer_dir(layer) + ".json")
            shutil.rmtree(store.layer_dir(layer))


def post(client: httpx.Client, subs: str, name: str, content: str, wait: bool = False) -> str:
    files = [{"name": name, "content": content}]
    r = client.post(subs, params={"wait": str(wait).lower()}, json={"files": files})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def final(client: httpx.Client, subs: str, token: str, bound_s: float) -> dict[str, Any]:
    """The submission once graded: a wait may end before a setup does."""
    deadline = time.monotonic() + bound_s
    while True:
        body: dict[str, Any] = client.get(f"{subs}/{token}", params={"wait": "true"}).json()
        if body.get("final"):
            return body
        assert time.monotonic() < deadline, body


def test_a_bundle_that_installs_is_graded_through_the_api(
    stack: Stack, made: list[str], tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(GSSETUP / "bundle", bundle)
    with (bundle / "setup.sh").open("a") as f:
        f.write(f"# run {secrets.token_hex(8)}: a bundle no worker has built\n")
    files = read_tree(bundle)
    setup = setup_image_name(IMAGE, files)
    made.extend([layout_name(setup), setup])
    url = stack.start_api("api-setup", STOCKADE_AUTH_TOKENS=f"{OWNER},{STUDENT}")
    staff = httpx.Client(base_url=url, timeout=120, headers={"X-Auth-Token": OWNER})
    student = httpx.Client(base_url=url, timeout=120, headers={"X-Auth-Token": STUDENT})
    with staff, student:
        r = staff.post("/api/v1/assignments", json={"assignment": zipped(bundle), "image": IMAGE})
        assert r.status_code == 201, r.text
        assert (r.json()["format"], r.json()["image"]) == ("gradescope", IMAGE)
        subs = f"/api/v1/assignments/{r.json()['id']}/submissions"

        # Two at once on a new assignment: the worker's two slots both need its setup.
        start = time.monotonic()
        tokens = [post(student, subs, "answer.txt", a) for a in ("42\n", "41\n")]
        full, wrong = (final(student, subs, t, SETUP_BOUND_S + 120) for t in tokens)
        first_s = time.monotonic() - start
        assert full["status"] == "graded", full
        # Each test passes only with what setup.sh installed: six (apt) and iniconfig (pip).
        assert scores(full) == {"import six": 1, "import iniconfig": 1, "answer": 1}
        assert (full["results"]["score"], full["results"]["max_score"]) == (3, 3)
        assert wrong["status"] == "graded", wrong
        assert scores(wrong) == {"import six": 1, "import iniconfig": 1, "answer": 0}
        assert (wrong["results"]["score"], wrong["results"]["max_score"]) == (2, 3)

        start = time.monotonic()
        again = final(student, subs, post(student, subs, "answer.txt", "42\n", True), 120)
        again_s = time.monotonic() - start
        assert (again["results"]["score"], again["results"]["max_score"]) == (3, 3)
    # The setup was built once, though two slots wanted it at once; the third found it.
    store = LayerStore(HostConfig.from_env().state_dir)
    ours = [m for m in store.layers() if dict(m.get("recipe") or {}).get("bundle") == digest(files)]
    assert len(ours) == 1, ours
    assert store.image_digests(setup)[-1] == ours[0]["digest"]
    assert again_s < first_s / 2, (first_s, again_s)
    print(f"\ntwo submissions with the setup built {first_s:.2f}s, a third {again_s:.2f}s")


def test_an_assignment_with_setup_pip_and_script_is_graded_through_the_api(
    stack: Stack, made: list[str], tmp_path: Path
) -> None:
    assignment = tmp_path / "pysetup"
    shutil.copytree(PYSETUP / "assignment", assignment)
    with (assignment / "setup.sh").open("a") as f:
        f.write(f"# run {secrets.token_hex(8)}\n")
    store = LayerStore(HostConfig.from_env().state_dir)
    before = {i for i in store.images() if i.startswith("assignment-")}
    url = stack.start_api("api-pysetup", STOCKADE_AUTH_TOKENS=f"{OWNER},{STUDENT}")
    with httpx.Client(base_url=url, timeout=120, headers={"X-Auth-Token": OWNER}) as staff:
        r = staff.post("/api/v1/assignments", json={"assignment": zipped(assignment)})
        assert r.status_code == 201, r.text
        subs = f"/api/v1/assignments/{r.json()['id']}/submissions"
        main = (PYSETUP / "submissions" / "full" / "main.py").read_text()
        try:
            body = final(staff, subs, post(staff, subs, "main.py", main), SETUP_BOUND_S + 120)
        finally:
            made.extend(
                i for i in store.images() if i.startswith("assignment-") and i not in before
            )
    assert body["status"] == "graded", body
    assert scores(body) == {"pip requirement": 1, "script's file": 1}
    assert (body["results"]["score"], body["results"]["max_score"]) == (2, 2)


def test_a_bundle_whose_setup_fails_is_not_graded_and_says_why(
    stack: Stack, tmp_path: Path
) -> None:
    bundle = tmp_path / "broken"
    shutil.copytree(GSSETUP / "bundle", bundle)
    token = secrets.token_hex(4)
    (bundle / "setup.sh").write_text(
        f"#!/bin/bash\necho 'E: Unable to locate package nosuch-{token}' >&2\nexit 100\n"
    )
    url = stack.start_api("api-setup-fails", STOCKADE_AUTH_TOKENS=f"{OWNER},{STUDENT}")
    with httpx.Client(base_url=url, timeout=120, headers={"X-Auth-Token": OWNER}) as staff:
        r = staff.post("/api/v1/assignments", json={"assignment": zipped(bundle)})
        assert r.status_code == 201, r.text
        subs = f"/api/v1/assignments/{r.json()['id']}/submissions"
        body = final(staff, subs, post(staff, subs, "answer.txt", "42\n"), 120)
    assert body["status"] == "not graded", body
    assert body["message"].startswith("setup.sh: ") and "status 100" in body["message"]
    assert f"nosuch-{token}" in body["results"]["output"]
    assert body["results"]["score"] == 0 and body["results"]["tests"] == []
