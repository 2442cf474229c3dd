"""Boxes on an image of layers: a read-only overlay under the slot's init layer."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.config import HostConfig
from sandbox.launcher import Launcher
from sandbox.result import Status
from sandbox.spec import BoxSpec

pytestmark = pytest.mark.privileged

PROBE = r"""
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    FILE *f = fopen("/etc/passwd", "r"); char line[256];
    while (f && fgets(line, sizeof line, f)) fputs(line, stdout);
    printf("layer2=%s\n", access("/usr/share/two", F_OK) == 0 ? "yes" : "no");
    printf("deleted=%s\n", access("/usr/share/gone", F_OK) == 0 ? "yes" : "no");
    FILE *w = fopen("/usr/share/new", "w");
    printf("root_write=%s\n", w ? "yes" : strerror(errno));
    FILE *b = fopen("/box/out", "w");
    printf("box_write=%s\n", b ? "yes" : strerror(errno));
    return 0;
}
"""


class FakeStore:
    """Two layers made by hand: the upper deletes a file of the lower (an overlay whiteout)."""

    def __init__(self, root: Path) -> None:
        self.lower, self.upper = root / "lower", root / "upper"

    def images(self) -> list[str]:
        return ["tiny"]

    def image_layers(self, image: str) -> list[str]:
        return [str(self.upper), str(self.lower)]


@pytest.fixture(scope="module")
def image_launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build a static test binary")
    root = tmp_path_factory.mktemp("image")
    store = FakeStore(root)
    (store.lower / "usr/bin").mkdir(parents=True)
    (store.lower / "usr/share").mkdir(parents=True)
    (store.lower / "usr/share/gone").write_text("x")
    (store.upper / "usr/share").mkdir(parents=True)
    (store.upper / "usr/share/two").write_text("2")
    os.mknod(store.upper / "usr/share/gone", 0o600 | 0o020000, os.makedev(0, 0))  # whiteout
    src = root / "probe.c"
    src.write_text(PROBE)
    subprocess.run(
        ["gcc", "-static", "-O1", "-o", str(store.lower / "usr/bin/probe"), str(src)], check=True
    )
    config = HostConfig.from_env()
    lau = Launcher(config)
    lau.container.templates._images = store
    try:
        yield lau
    finally:
        lau.close()


def test_image_box_sees_its_layers_and_init_layer(image_launcher: Launcher) -> None:
    r = image_launcher.run(BoxSpec(argv=("/usr/bin/probe",), rootfs="tiny"))
    assert r.status is Status.OK, (r.message, r.stderr)
    out = r.stdout.decode()
    assert "box:x:600" in out  # the init layer's passwd, with the slot's uid
    assert "layer2=yes" in out and "deleted=no" in out
    assert "root_write=Read-only file system" in out
    assert "box_write=yes" in out


def test_unknown_image_is_a_spec_error(image_launcher: Launcher) -> None:
    from sandbox.errors import SpecError

    with pytest.raises(SpecError, match="rootfs: no image named 'nope'"):
        image_launcher.run(BoxSpec(argv=("/usr/bin/probe",), rootfs="nope"))


def test_launchers_sharing_a_run_dir_keep_their_own_init_layers(tmp_path: Path) -> None:
    """Every Celery child has a launcher, and all share the host's run dir: one closing (a
    child recycled) once removed the init layers the others' image templates were built on,
    and the next template an other built failed with ENOENT."""
    from sandbox.backends.container.templates import TemplateCache
    from sandbox.rootfs import BoxUser

    store = FakeStore(tmp_path / "image")
    (store.lower / "usr").mkdir(parents=True)
    (store.upper / "usr").mkdir(parents=True)
    run_dir = str(tmp_path / "run")
    first, second = TemplateCache(run_dir, store), TemplateCache(run_dir, store)
    try:
        first.get("tiny", BoxUser(61001, 61001))
        second.get("tiny", BoxUser(61001, 61001))  # the same slot's uid, in turn
        second.get("tiny", BoxUser(61002, 61002))
        mine = sorted(Path(first.init_root).iterdir())
        second.close()
        assert sorted(Path(first.init_root).iterdir()) == mine
        assert (mine[0] / "etc" / "passwd").read_text().count(":61001:") >= 1
        first.get("tiny", BoxUser(61003, 61003))
    finally:
        first.close()
        second.close()
    assert not list(Path(run_dir, "init").iterdir())  # each removed its own, and only that
