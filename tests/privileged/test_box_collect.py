"""Reading files back: single files and whole trees, regular files only, never a symlink."""

from __future__ import annotations

import pytest

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec, Limits

pytestmark = pytest.mark.privileged


def test_tree_collects_regular_files_and_refuses_the_rest(launcher: Launcher) -> None:
    script = "mkdir -p d/e && echo 1 > a && echo 2 > d/e/b && ln -s /etc/passwd s && ln -s / d/up"
    r = launcher.run(BoxSpec(argv=("/bin/sh", "-c", script), collect=("/box/",)))
    assert r.status is Status.OK, r.message
    assert r.files == {"/box/a": b"1\n", "/box/d/e/b": b"2\n"}
    assert set(r.files_refused) == {"/box/s", "/box/d/up"}
    assert all("not a regular file" in why for why in r.files_refused.values())


def test_tree_is_capped_in_total_size(launcher: Launcher) -> None:
    script = "head -c 3000 /dev/zero > a && head -c 3000 /dev/zero > b"
    spec = BoxSpec(argv=("/bin/sh", "-c", script), collect=("/box/",), collect_max_bytes=4000)
    r = launcher.run(spec)
    assert list(r.files) == ["/box/a"]
    assert "cap" in r.files_refused["/box/b"]


def test_symlinked_directory_in_a_single_path_is_refused(launcher: Launcher) -> None:
    script = "mkdir real && echo x > real/f && ln -s real link"
    spec = BoxSpec(argv=("/bin/sh", "-c", script), collect=("link/f", "real/f"))
    r = launcher.run(spec)
    assert r.files == {"/box/real/f": b"x\n"}
    assert "symlinks" in r.files_refused["/box/link/f"]


def test_collect_outside_box_is_a_spec_error() -> None:
    from sandbox.spec import validate

    assert validate(BoxSpec(argv=("x",), collect=("../etc/passwd",), limits=Limits()))


# Makes deep/ (a chain of 1200 directories, a file at the bottom: deeper than the box's
# open-file limit and than Python's recursion limit) and long/ (a chain whose path passes
# PATH_MAX), each level entered with a relative chdir.
DEEP_TREES = """
import os
for top, name, depth in (("deep", "d", 1200), ("long", "n" * 200, 40)):
    os.chdir("/box")
    os.mkdir(top)
    os.chdir(top)
    for _ in range(depth):
        os.mkdir(name)
        os.chdir(name)
    with open("f", "w") as f:
        f.write("bottom")
"""
DEEP_BOTTOM = "/box/deep" + "/d" * 1200 + "/f"


def deep_tree_spec(tier: str) -> BoxSpec:
    """A box whose collected tree is deeper than its open-file limit, which the container
    tier's init holds too, and than the host's recursion limit (the gVisor tier's host
    walk): both read it with one directory open at a time."""
    limits = Limits(nofile=32, scratch_inodes=2048)
    argv = ("/usr/bin/python3", "-c", DEEP_TREES)
    return BoxSpec(argv=argv, collect=("deep/", "long/"), limits=limits, tier=tier)


def check_deep_trees(r: BoxResult) -> None:
    assert r.status is Status.OK, f"{r.status}: {r.message}"
    assert r.files == {DEEP_BOTTOM: b"bottom"}
    [(key, why)] = r.files_refused.items()
    assert key.startswith("/box/long/") and len(key) <= 4096
    assert "path longer than 4096 bytes" in why


def test_tree_deeper_than_the_open_file_limit(launcher: Launcher) -> None:
    check_deep_trees(launcher.run(deep_tree_spec("container")))
