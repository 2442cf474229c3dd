"""Reading files back: single files and whole trees, regular files only, never a symlink."""

from __future__ import annotations

import pytest

from sandbox.launcher import Launcher
from sandbox.result import Status
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
