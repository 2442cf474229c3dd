"""The gVisor tier against the real runsc: verdicts, stdio, files, limits, an image root,
and nothing of a box (runsc process, cgroup, mount, state) left after it. CPU accounting is
in test_tier_gvisor_cpu.py, the hostile programs in test_tier_gvisor_{containment,...}.py."""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import tiers
from sandbox.backends.gvisor import bundle as gvisor_bundle
from sandbox.backends.gvisor import rootfs as gvisor_rootfs
from sandbox.backends.gvisor import sweep as gvisor_sweep
from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import MIB, BoxSpec, FileIn
from sandbox.stdio import Stdio
from tests.privileged import hostile_util as hu
from tests.privileged.test_box_collect import check_deep_trees, deep_tree_spec

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
elves = hu.elves
PID = os.getpid()
TIGHT = dataclasses.replace(hu.TIGHT, wall_time_s=5.0)


@pytest.fixture(scope="module", autouse=True)
def gvisor_usable(launcher: Launcher) -> None:
    reason = tiers.probe("gvisor", launcher.config)
    if reason is not None:
        pytest.skip(f"the gVisor tier cannot run here: {reason}")


def leftovers() -> list[str]:
    """runsc processes, cgroups, mounts and state of this process's gVisor boxes."""
    mine = re.compile(rf"gvisor-{PID}-\d+")
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if mine.search(cmd) or f"/gvisor/{PID}." in cmd:
            found.append(f"process {name}: {cmd[:120]}")
    for root in gvisor_sweep.v1_roots():
        for parent in (root, os.path.join(root, "stockade")):
            if os.path.isdir(parent):
                found += [f"cgroup {parent}/{d}" for d in os.listdir(parent) if mine.fullmatch(d)]
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if f"/gvisor/{PID}." in line]
    state = "/run/stockade/gvisor/state"
    if os.path.isdir(state):
        found += [f"state {n}" for n in os.listdir(state) if mine.match(n)]
    return found


@pytest.fixture(autouse=True)
def nothing_left() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 3.0
    while (left := leftovers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, left


def run(launcher: Launcher, *argv: str, stdio: Stdio | None = None, **spec: object) -> BoxResult:
    box = BoxSpec(argv=argv, tier="gvisor", **spec)  # type: ignore[arg-type]
    return launcher.run(box, stdio)


def test_hello(launcher: Launcher) -> None:
    r = run(launcher, "/bin/sh", "-c", "echo hello; id -u; echo oops >&2")
    assert r.status is Status.OK, hu.describe(r)
    assert r.stdout.splitlines()[0] == b"hello"
    assert int(r.stdout.splitlines()[1]) != 0  # a box uid, not root
    assert r.stderr == b"oops\n"
    assert r.runtime.startswith("gvisor/")
    assert r.memory > 0


def test_exit_codes_signals_and_a_missing_program(launcher: Launcher) -> None:
    r = run(launcher, "/bin/sh", "-c", "exit 3")
    assert (r.status, r.exit_code, r.signal) == (Status.RE, 3, None), hu.describe(r)
    r = run(launcher, "/bin/sh", "-c", "kill -SEGV $$")
    assert (r.status, r.signal) == (Status.SG, signal.SIGSEGV), hu.describe(r)
    # runsc's own exit code folds a signal n into 128 + n; the wait status is read from its
    # log, so these two are told apart as in a container box.
    r = run(launcher, "/bin/sh", "-c", "exit 130")
    assert (r.status, r.exit_code, r.signal) == (Status.RE, 130, None), hu.describe(r)
    r = run(launcher, "/bin/sh", "-c", "kill -INT $$")
    assert (r.status, r.signal) == (Status.SG, signal.SIGINT), hu.describe(r)
    r = run(launcher, "/box/missing")
    assert (r.status, r.exit_code) == (Status.RE, 127), hu.describe(r)
    assert "Cannot run the program" in r.message and r.stderr == b""


def test_stdin_from_the_spec_and_from_the_callers_pipes(launcher: Launcher) -> None:
    r = run(launcher, "/bin/cat", stdin=b"line one\nline two\n")
    assert (r.status, r.stdout) == (Status.OK, b"line one\nline two\n"), hu.describe(r)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    os.write(in_w, b"via a pipe\n")
    os.close(in_w)
    r = run(launcher, "/bin/cat", stdio=Stdio(in_r, out_w, owned=True))
    assert r.status is Status.OK and r.stdout == b"", hu.describe(r)
    assert os.read(out_r, 100) == b"via a pipe\n"
    assert os.read(out_r, 100) == b""  # the box's copy is closed: EOF
    os.close(out_r)


def test_collect_a_tree_deeper_than_the_open_file_and_recursion_limits(
    launcher: Launcher,
) -> None:
    check_deep_trees(launcher.run(deep_tree_spec("gvisor")))


def test_files_in_and_collect_out_never_through_a_symlink(launcher: Launcher) -> None:
    script = "cat in/data.txt > out.txt; mkdir -p tree/sub; echo x > tree/sub/y; "
    script += "ln -s /etc/passwd link; ln -s /etc/passwd tree/evil; echo t > /tmp/t"
    r = run(
        launcher,
        "/bin/sh",
        "-c",
        script,
        files=(FileIn("in/data.txt", b"payload"), FileIn("/tmp/pre", b"p")),
        collect=("out.txt", "link", "tree/", "missing"),
    )
    assert r.status is Status.OK, hu.describe(r)
    assert r.files["/box/out.txt"] == b"payload"
    assert r.files["/box/tree/sub/y"] == b"x\n"
    assert set(r.files_refused) == {"/box/link", "/box/tree/evil", "/box/missing"}
    assert all(b"root:" not in v for v in r.files.values())


def test_memory_bomb_is_mle(launcher: Launcher, elves: dict[str, bytes]) -> None:
    r = hu.run_c(launcher, elves, "membomb", limits=TIGHT, tier="gvisor")
    assert r.status is Status.MLE, hu.describe(r)
    assert int(hu.kv(r).get("mib", "0")) >= 16  # the program got memory before the limit


def test_cpu_burner_is_to(launcher: Launcher, elves: dict[str, bytes]) -> None:
    lim = dataclasses.replace(TIGHT, cpu_time_s=0.5)
    started = time.monotonic()
    r = hu.run_c(launcher, elves, "spin", limits=lim, tier="gvisor")
    assert r.status is Status.TO, hu.describe(r)
    assert 0.5 <= r.time <= 0.7, hu.describe(r)
    assert time.monotonic() - started < 3.0


def test_sleeper_is_killed_within_half_a_second_of_the_wall_limit(launcher: Launcher) -> None:
    lim = dataclasses.replace(TIGHT, wall_time_s=1.0)
    r = run(launcher, "/bin/sleep", "30", limits=lim)
    assert r.status is Status.TO and "wall" in r.message, hu.describe(r)
    assert 1.0 <= r.wall_time <= 1.5, hu.describe(r)


def test_output_flood_is_ole(launcher: Launcher, elves: dict[str, bytes]) -> None:
    r = hu.run_c(launcher, elves, "flood", limits=TIGHT, tier="gvisor")
    assert r.status is Status.OLE, hu.describe(r)
    assert len(r.stdout) == TIGHT.output_bytes


def test_fork_bomb_is_held_by_pids(launcher: Launcher, elves: dict[str, bytes]) -> None:
    lim = dataclasses.replace(TIGHT, pids=16)
    r = hu.run_c(launcher, elves, "forkcount", limits=lim, tier="gvisor")
    assert r.status is Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["fork_error"] == "EAGAIN" and int(out["forked"]) < lim.pids, hu.describe(r)
    lim = dataclasses.replace(TIGHT, pids=16, cpu_time_s=0.5)
    r = hu.run_c(launcher, elves, "forkbomb", limits=lim, tier="gvisor")
    assert r.status is Status.TO, hu.describe(r)
    assert subprocess.run(["/bin/true"], check=False, timeout=10).returncode == 0


def test_image_rootfs(launcher: Launcher) -> None:
    if "python3" not in launcher.container.templates.names():
        pytest.skip("no python3 image in the layer store (stockade layers build python3)")
    r = run(launcher, "python3", "-c", "print(1)", rootfs="python3")
    assert (r.status, r.stdout) == (Status.OK, b"1\n"), hu.describe(r)


def test_box_whose_sandbox_is_killed_mid_run_leaves_nothing(launcher: Launcher) -> None:
    """SIGKILL to the Sentry (the `runsc boot` process this box started) while the program
    runs: the box ends with a result, and the fixture checks nothing of it is left."""
    killed: list[int] = []

    def kill_sentry() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not killed:
            for name in filter(str.isdigit, os.listdir("/proc")):
                try:
                    cmd = Path(f"/proc/{name}/cmdline").read_bytes()
                except OSError:
                    continue
                if cmd.startswith(b"runsc-sandbox") and f"/gvisor/{PID}.".encode() in cmd:
                    os.kill(int(name), signal.SIGKILL)
                    killed.append(int(name))
                    return
            time.sleep(0.05)

    t = threading.Thread(target=kill_sentry)
    t.start()
    r = run(launcher, "/bin/sh", "-c", "sleep 0.5; echo late; sleep 20")
    t.join()
    assert killed, "the Sentry was never seen"
    assert r.status is not Status.OK and b"late" not in r.stdout, hu.describe(r)


def test_sweeper_removes_what_a_dead_backend_left(tmp_path: Path) -> None:
    dead = subprocess.Popen(["/bin/true"])
    dead.wait()
    name = f"gvisor-{dead.pid}-1"
    made = []
    for root in gvisor_sweep.v1_roots():
        parent = os.path.join(root, "stockade")
        if os.path.isdir(parent):
            os.mkdir(os.path.join(parent, name))
            made.append(os.path.join(parent, name))
    state = tmp_path / "state"
    state.mkdir()
    (state / f"{name}_sandbox:{name}.state").write_text("{}")
    (tmp_path / f"{dead.pid}.1" / name).mkdir(parents=True)
    removed = gvisor_sweep.sweep_stale("/usr/bin/runsc", str(tmp_path), str(state))
    assert not [p for p in made if os.path.exists(p)], removed
    assert not list(state.iterdir()) and not (tmp_path / f"{dead.pid}.1").exists()


def test_memory_limit_and_figure_are_the_programs_as_in_a_container_box(
    launcher: Launcher,
) -> None:
    """64 MiB for the program: 40 MB fits and is reported as the program's (the interpreter
    and its file pages on top, not the Sentry's own 13 MB); 80 MB is MLE on both tiers,
    though the host cgroup, with the Sentry's allowance, would hold 112 MiB."""
    lim = dataclasses.replace(TIGHT, memory_bytes=64 * MIB)
    code = "b = bytearray({} * 1000 * 1000); print(len(b))"
    r = run(launcher, "/usr/bin/python3", "-c", code.format(40), limits=lim)
    assert (r.status, r.stdout) == (Status.OK, b"40000000\n"), hu.describe(r)
    assert 40_000_000 <= r.memory <= 40_000_000 + 8 * MIB, hu.describe(r)
    for tier in ("container", "gvisor"):
        box = BoxSpec(argv=("/usr/bin/python3", "-c", code.format(80)), limits=lim, tier=tier)
        r = launcher.run(box)
        assert (r.status, r.stdout) == (Status.MLE, b""), f"{tier}: {hu.describe(r)}"


def test_assembled_root_refuses_root_itself_outside_the_scratch(tmp_path: Path) -> None:
    """The gofer runs as root on the host, so the box's read-only paths must be read-only
    mounts there, not only unwritable by the box uid: even root gets EROFS outside /box
    (/tmp and /dev/shm are runsc's binds of the scratch, not in this tree)."""
    skeleton, scratch, target = tmp_path / "skel", tmp_path / "scratch", tmp_path / "root"
    for d in ("etc", "usr", "box", "tmp", "dev/shm"):
        (skeleton / d).mkdir(parents=True)
    for d in ("box", "tmp", "shm"):
        (scratch / d).mkdir(parents=True)
    usr = tmp_path / "usr"
    usr.mkdir()
    binds = [gvisor_bundle.HostBind(str(usr), "/usr")]
    made = gvisor_rootfs.assemble_root(str(target), str(skeleton), binds, str(scratch))
    try:
        assert made == [str(target), f"{target}/usr", f"{target}/box"]
        for path in ("etc/x", "usr/x", "x", "tmp/x"):
            with pytest.raises(OSError) as e:
                (target / path).write_text("no")
            assert e.value.errno == errno.EROFS, path
        (target / "box/a").write_text("yes")
        assert (scratch / "box/a").read_text() == "yes"
    finally:
        for point in reversed(made):
            gvisor_rootfs.unmount(point)
    assert not gvisor_sweep.mounts_under(str(target))
