"""Read-only all the way down: a writable host mount under a path bound into boxes (/usr) is
read-only, nosuid and nodev in the box too, on the container and gVisor tiers, whether the
kernel has mount_setattr(2) or the submounts are remounted one by one."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox import mounts, tiers
from sandbox import syscalls as sc
from sandbox.errors import SandboxError
from sandbox.launcher import Launcher
from sandbox.result import Status
from sandbox.spec import BoxSpec, FileIn
from tests.privileged import hostile_util as hu

pytestmark = pytest.mark.privileged

# The test's own directory under /usr/local/share, with a tmpfs on it: a host submount of
# /usr that is writable by anyone (mode 1777), as a careless host could have.
PARENT = Path("/usr/local/share")

PROBE = """
import errno, os, sys
d = sys.argv[1]
say("canary", open(d + "/canary").read().strip())
attempt("write", lambda: open(d + "/new", "w").write("x"))
attempt("mkdir", os.mkdir, d + "/newdir")
for line in open("/proc/self/mountinfo"):
    if line.split()[4] == d:
        say("options", line.split()[5])
"""


@pytest.fixture(scope="module")
def host_submount() -> Iterator[Path]:
    if not PARENT.is_dir():
        pytest.skip(f"{PARENT} is missing on this host")
    where = PARENT / f"stockade-rotest-{secrets.token_hex(4)}"
    where.mkdir()
    try:
        sc.mount("stockade-rotest", str(where), "tmpfs", 0, "size=1m,nr_inodes=64,mode=1777")
        try:
            (where / "canary").write_text("visible\n")
            yield where
        finally:
            sc.umount2(str(where), sc.MNT_DETACH)
    finally:
        where.rmdir()


@pytest.fixture(scope="module")
def fresh_launcher(host_submount: Path) -> Iterator[Launcher]:
    """A launcher made after the submount: its templates bind /usr with it inside."""
    with Launcher() as lau:
        yield lau


@pytest.mark.parametrize("tier", ["container", "gvisor"])
def test_host_submount_under_usr_is_read_only_in_the_box(
    fresh_launcher: Launcher, host_submount: Path, tier: str
) -> None:
    if tier != "container" and (why := tiers.probe(tier, fresh_launcher.config)):
        pytest.skip(f"the {tier} tier cannot run here: {why}")
    box = BoxSpec(
        argv=(hu.PYTHON, "/box/probe.py", str(host_submount)),
        files=(FileIn("probe.py", hu.py_program(PROBE)),),
        limits=hu.TIGHT,
        tier=tier,
    )
    r = fresh_launcher.run(box)
    assert r.status is Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["canary"] == "visible", hu.describe(r)  # the submount is there: not vacuous
    assert (out["write"], out["mkdir"]) == ("EROFS", "EROFS"), hu.describe(r)
    if tier == "container":  # the Sentry's mountinfo lists its own mounts, not the host's
        assert {"ro", "nosuid", "nodev"} <= set(out["options"].split(",")), hu.describe(r)
    assert sorted(p.name for p in host_submount.iterdir()) == ["canary"]


def in_private_namespace(body: Callable[[str], object]) -> object:
    """body(scratch dir) in a forked child with a private mount namespace: whatever it
    mounts goes when the child exits."""
    with tempfile.TemporaryDirectory(prefix="stockade-rotest-") as tmp:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                sc.unshare(sc.CLONE_NEWNS)
                sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
                os.write(w, json.dumps(body(tmp)).encode())
            except BaseException as e:
                os.write(w, json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            data = json.loads(f.read() or b'{"error": "no answer"}')
        os.waitpid(pid, 0)
    return data


def bind_over_submounts(walk: bool) -> Callable[[str], object]:
    """src/ holding a writable tmpfs, and inside it a noexec one; src bound read-only at dst
    as a box's template binds /usr; what a write into each submount of dst gives, and their
    flags."""

    def body(tmp: str) -> object:
        src, dst = f"{tmp}/src", f"{tmp}/dst"
        os.makedirs(f"{src}/sub")
        os.mkdir(dst)
        sc.mount("t", f"{src}/sub", "tmpfs", 0, "size=64k")
        os.mkdir(f"{src}/sub/deeper")
        sc.mount("t", f"{src}/sub/deeper", "tmpfs", sc.MS_NOEXEC, "size=64k")
        mounts._use_mount_setattr = not walk
        mounts.apply([mounts.Bind(src, dst)], "", step="test")
        got: dict[str, object] = {}
        for rel in ("sub", "sub/deeper"):
            try:
                Path(f"{dst}/{rel}/x").write_text("x")
                got[rel] = "written"
            except OSError as e:
                got[rel] = e.errno
        with open("/proc/self/mountinfo") as f:
            opts = {ln.split()[4]: ln.split()[5] for ln in f if ln.split()[4].startswith(dst)}
        got["options"] = {k[len(dst) :]: sorted(v.split(",")) for k, v in opts.items()}
        got["source_writable"] = os.access(f"{src}/sub", os.W_OK)
        return got

    return body


@pytest.mark.parametrize("walk", [False, True], ids=["mount_setattr", "mountinfo-walk"])
def test_every_submount_of_a_read_only_bind_is_sealed(walk: bool) -> None:
    got = in_private_namespace(bind_over_submounts(walk))
    assert isinstance(got, dict) and "error" not in got, got
    assert got["sub"] == got["sub/deeper"] == 30  # EROFS
    options = got["options"]
    for point in ("", "/sub", "/sub/deeper"):
        assert {"ro", "nosuid", "nodev"} <= set(options[point]), options
    assert "noexec" in options["/sub/deeper"]  # a flag the submount had is kept
    assert got["source_writable"]  # the host's own mounts are untouched


def test_a_failing_seal_names_the_step_and_the_syscall() -> None:
    with pytest.raises(SandboxError) as err:
        mounts.seal_readonly("/nonexistent/stockade-rotest", sc.MS_NOSUID, step="template")
    assert err.value.step == "template"
    assert err.value.syscall.startswith("mount_setattr(/nonexistent/stockade-rotest")
