"""What the box reports, measured against programs whose behaviour is known exactly: CPU time,
peak memory, wall and CPU limit kills, exit codes, signals, stdin, output, env and collect."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec, FileIn, Limits, box_path

pytestmark = pytest.mark.privileged

PYTHON = "/usr/bin/python3"
MB = 1000 * 1000  # the allocation below is 100 * 10**6 bytes: decimal megabytes

# One host-compiled helper with a mode per measurement (the lab's v2 accounting uses it too).
PROG_C = Path(__file__).with_name("acct_prog.c")


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    d = tmp_path_factory.mktemp("accounting")
    subprocess.run(
        ["gcc", "-O2", "-pthread", "-o", str(d / "prog"), str(PROG_C)],
        check=True,
        timeout=60,
    )
    return (d / "prog").read_bytes()


def run_prog(
    launcher: Launcher, prog: bytes, *args: str, limits: Limits | None = None
) -> BoxResult:
    files = (FileIn("prog", prog, 0o755),)
    return launcher.run(BoxSpec(argv=("./prog", *args), files=files, limits=limits or Limits()))


def run_py(launcher: Launcher, code: str, stdin: bytes = b"") -> BoxResult:
    return launcher.run(BoxSpec(argv=(PYTHON, "-c", code), stdin=stdin))


# ---- accounting accuracy --------------------------------------------------------------------


def test_one_second_of_cpu_reports_within_5_percent(launcher: Launcher, prog: bytes) -> None:
    r = run_prog(launcher, prog, "burn", "1.0")
    assert r.status is Status.OK, r.message
    own = float(r.stdout)  # what the program's own clock says it used
    assert own >= 1.0
    assert 0.95 <= r.time <= 1.05, r.to_dict()


def test_two_threads_of_half_a_second_report_one_second(launcher: Launcher, prog: bytes) -> None:
    r = run_prog(launcher, prog, "threads", "2", "0.5")
    assert r.status is Status.OK, r.message
    assert float(r.stdout) >= 1.0
    # Both threads count (cgroup cpuacct), not just the main thread's or the wall clock's.
    assert 0.95 <= r.time <= 1.05, r.to_dict()


def test_100_mb_resident_reports_peak_within_10_percent(launcher: Launcher, prog: bytes) -> None:
    """`memory` is the cgroup's peak: the 100 * 10**6 bytes the program touched plus its own
    baseline (loader, libc, stack, page tables: about a megabyte), which an empty run of the
    same program measures. The issue's ±10% is checked on the raw figure against 100 MB
    (decimal, what was allocated); the allocation itself, peak minus the baseline, must match
    far more closely."""
    baseline = run_prog(launcher, prog, "alloc", "0")
    r = run_prog(launcher, prog, "alloc", str(100 * MB))
    assert baseline.status is Status.OK and r.status is Status.OK, r.message
    assert 90 * MB <= r.memory <= 110 * MB, r.to_dict()
    assert r.memory >= 100 * MB  # every page was touched, so the peak cannot be lower
    assert baseline.memory < 8 * MB, baseline.to_dict()
    assert abs((r.memory - baseline.memory) - 100 * MB) <= 2 * MB, (r.memory, baseline.memory)


def test_wall_time_kill_lands_within_0_2_s(launcher: Launcher) -> None:
    started = time.monotonic()
    r = launcher.run(BoxSpec(argv=("/bin/sleep", "30"), limits=Limits(wall_time_s=1.0)))
    took = time.monotonic() - started
    assert r.status is Status.TO, r.to_dict()
    assert "wall" in r.message.lower()
    assert 1.0 <= r.wall_time <= 1.2, r.to_dict()
    assert took <= 1.3, took
    assert r.time < 0.1  # a sleeper uses no CPU: the verdict came from the wall clock


def test_cpu_limit_kill(launcher: Launcher, prog: bytes) -> None:
    r = run_prog(launcher, prog, "spin", limits=Limits(cpu_time_s=0.5))
    assert r.status is Status.TO, r.to_dict()
    assert 0.5 <= r.time <= 0.7, r.to_dict()
    assert r.wall_time < 2.0  # killed by the CPU limit, long before the 10 s wall limit
    assert "cpu" in r.message.lower()


# ---- exit codes and signals -----------------------------------------------------------------


def test_exit_zero_is_ok(launcher: Launcher, prog: bytes) -> None:
    r = run_prog(launcher, prog, "exit", "0")
    assert (r.status, r.exit_code, r.signal) == (Status.OK, 0, None)


@pytest.mark.parametrize("code", [1, 3, 255])
def test_nonzero_exit_is_re_with_the_code(launcher: Launcher, prog: bytes, code: int) -> None:
    r = run_prog(launcher, prog, "exit", str(code))
    assert (r.status, r.exit_code, r.signal) == (Status.RE, code, None), r.to_dict()
    assert str(code) in r.message


@pytest.mark.parametrize(
    ("mode", "sig"), [("segv", signal.SIGSEGV), ("abort", signal.SIGABRT)], ids=["segv", "abort"]
)
def test_signal_death_is_sg_with_the_real_signal(
    launcher: Launcher, prog: bytes, mode: str, sig: signal.Signals
) -> None:
    r = run_prog(launcher, prog, mode)
    assert (r.status, r.exit_code, r.signal) == (Status.SG, None, int(sig)), r.to_dict()
    assert sig.name in r.message


def test_python_killing_itself_reports_that_signal(launcher: Launcher) -> None:
    r = run_py(launcher, "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert (r.status, r.signal) == (Status.SG, signal.SIGTERM), r.to_dict()


# ---- stdin, stdout, stderr, env --------------------------------------------------------------


def test_large_stdin_is_read_fully(launcher: Launcher) -> None:
    data = os.urandom(5 * MB + 7)  # binary, NULs included, not a multiple of any buffer
    code = (
        "import sys, hashlib; d = sys.stdin.buffer.read(); "
        "print(len(d), hashlib.sha256(d).hexdigest())"
    )
    r = run_py(launcher, code, stdin=data)
    assert r.status is Status.OK, r.to_dict()
    assert r.stdout.split() == [str(len(data)).encode(), hashlib.sha256(data).hexdigest().encode()]


def test_stdout_and_stderr_are_captured_apart_and_exact(launcher: Launcher) -> None:
    code = (
        "import sys; sys.stdout.buffer.write(bytes(range(256)) * 4); "
        "sys.stderr.buffer.write(b'to stderr\\n')"
    )
    r = run_py(launcher, code)
    assert r.status is Status.OK, r.to_dict()
    assert r.stdout == bytes(range(256)) * 4
    assert r.stderr == b"to stderr\n"


def test_stdin_defaults_to_empty(launcher: Launcher) -> None:
    r = run_py(launcher, "import sys; print(len(sys.stdin.buffer.read()))")
    assert r.stdout == b"0\n", r.to_dict()


def test_env_is_only_path_home_lang_and_the_given(
    launcher: Launcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STOCKADE_TEST_SECRET", "hunter2-accounting")
    r = launcher.run(BoxSpec(argv=("/usr/bin/env",), env=(("K", "V"), ("EMPTY", ""))))
    assert r.status is Status.OK, r.to_dict()
    env = dict(line.split("=", 1) for line in r.stdout.decode().splitlines())
    assert set(env) == {"PATH", "HOME", "LANG", "K", "EMPTY"}
    assert (env["K"], env["EMPTY"], env["HOME"]) == ("V", "", "/box")
    assert b"hunter2" not in r.stdout


def test_given_env_overrides_the_defaults(launcher: Launcher) -> None:
    r = launcher.run(BoxSpec(argv=("/usr/bin/env",), env=(("LANG", "C"),)))
    assert b"LANG=C\n" in r.stdout, r.to_dict()


# ---- a missing program ------------------------------------------------------------------------


@pytest.mark.parametrize("program", ["/box/no-such-program", "no-such-program"])
def test_missing_program_is_re_saying_not_found(launcher: Launcher, program: str) -> None:
    r = launcher.run(BoxSpec(argv=(program,)))
    assert r.status is Status.RE, r.to_dict()
    assert program in r.message
    assert "not found" in r.message.lower(), r.message


# ---- collect ----------------------------------------------------------------------------------


def _writer(size: int, name: str = "out.bin") -> str:
    return f"open({name!r}, 'wb').write(bytes(i % 251 for i in range({size})))"


def test_collect_reads_back_a_regular_file(launcher: Launcher) -> None:
    spec = BoxSpec(argv=(PYTHON, "-c", _writer(100_000)), collect=("out.bin",))
    r = launcher.run(spec)
    assert r.status is Status.OK, r.to_dict()
    assert r.files == {box_path("out.bin"): bytes(i % 251 for i in range(100_000))}


def test_collect_refuses_a_file_over_the_cap(launcher: Launcher) -> None:
    code = _writer(1001, "big.bin") + "; " + _writer(1000, "fits.bin")
    spec = BoxSpec(
        argv=(PYTHON, "-c", code), collect=("big.bin", "fits.bin"), collect_max_bytes=1000
    )
    r = launcher.run(spec)
    assert r.status is Status.OK, r.to_dict()
    assert box_path("big.bin") not in r.files
    assert len(r.files[box_path("fits.bin")]) == 1000


def test_collect_refuses_a_symlink(launcher: Launcher) -> None:
    code = "import os; os.symlink('/etc/passwd', 'out.bin')"
    r = launcher.run(BoxSpec(argv=(PYTHON, "-c", code), collect=("out.bin",)))
    assert r.status is Status.OK, r.to_dict()
    assert r.files == {}


def test_settles(launcher: Launcher) -> None:
    """Every box above is torn down within the reaper's bound."""
    assert launcher.settle(10.0)
