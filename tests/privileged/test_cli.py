"""The real `stockade` console script end to end: pass-through, --json, usage errors, files,
stdin, environment, limits, and a prompt, clean exit."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.privileged

STOCKADE = str(Path(sys.executable).with_name("stockade"))
PYTHON = "/usr/bin/python3"
SEGFAULT = "import ctypes; ctypes.string_at(0)"  # a real fault at address 0, not os.kill


def stockade(
    *argv: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [STOCKADE, "run", *argv],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=30,
        check=False,
    )


def as_json(*argv: str, **kwargs: Any) -> dict[str, Any]:
    p = stockade("--json", *argv, **kwargs)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 1, p.stdout  # one JSON object and nothing else
    data: dict[str, Any] = json.loads(lines[0])
    return data


def test_console_script_is_installed() -> None:
    assert os.access(STOCKADE, os.X_OK), STOCKADE


def test_output_passes_through_and_the_exit_status_mirrors() -> None:
    p = stockade("--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3")
    assert (p.returncode, p.stdout, p.stderr) == (3, b"out\n", b"err\n")


def test_success_is_exit_0() -> None:
    p = stockade("--", "/bin/true")
    assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")


def test_segfault_exits_139() -> None:
    p = stockade("--", PYTHON, "-c", SEGFAULT)
    assert p.returncode == 128 + signal.SIGSEGV, p.stderr
    assert b"SIGSEGV" in p.stderr


def test_json_has_the_interface_keys() -> None:
    data = as_json("--", "/bin/sh", "-c", "printf hi; printf oops >&2")
    keys = {"status", "exit_code", "signal", "time", "wall_time", "memory", "stdout", "stderr"}
    assert set(data) >= keys | {"message"}
    assert (data["status"], data["exit_code"], data["signal"]) == ("OK", 0, None)
    assert (data["stdout"], data["stderr"]) == ("hi", "oops")
    assert 0 <= data["time"] < 1 and 0 < data["wall_time"] < 5 and data["memory"] > 0


def test_json_reports_signal_and_exit_code() -> None:
    seg = as_json("--", PYTHON, "-c", SEGFAULT)
    assert (seg["status"], seg["exit_code"], seg["signal"]) == ("SG", None, 11)
    re = as_json("--", "/bin/sh", "-c", "exit 3")
    assert (re["status"], re["exit_code"], re["signal"]) == ("RE", 3, None)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--mem", "12Q"], "--mem"),
        (["--mem", "1K"], "--mem"),
        (["--time", "-1"], "--time"),
        (["--pids", "0"], "--pids"),
        (["--file", "/nonexistent/stockade-input:in.txt"], "--file"),
        (["--profile", "no-such-profile"], "--profile"),
        (["--rootfs", "no-such-image"], "--rootfs"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(argv: list[str], flag: str) -> None:
    p = stockade(*argv, "--", "/bin/true")
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert flag.encode() in p.stderr, p.stderr
    assert b"Traceback" not in p.stderr


def test_missing_program_is_re_not_found() -> None:
    data = as_json("--", "no-such-program")
    assert data["status"] == "RE"
    assert "not found" in data["message"].lower(), data
    p = stockade("--", "/box/no-such-program")
    assert p.returncode == 127
    assert b"not found" in p.stderr.lower(), p.stderr


def test_the_hosts_environment_does_not_reach_the_box() -> None:
    env = {**os.environ, "STOCKADE_TEST_SECRET": "s3cret-cli-canary"}
    p = stockade("--env", "GIVEN=yes", "--", "/usr/bin/env", env=env)
    assert p.returncode == 0, p.stderr
    got = dict(line.split("=", 1) for line in p.stdout.decode().splitlines())
    assert set(got) == {"PATH", "HOME", "LANG", "GIVEN"}
    assert got["GIVEN"] == "yes"
    assert b"s3cret" not in p.stdout


def test_file_places_files_relative_to_box(tmp_path: Path) -> None:
    data, script = tmp_path / "data.txt", tmp_path / "run.sh"
    data.write_bytes(b"payload\n")
    script.write_bytes(b"#!/bin/sh\necho script ran in $(pwd)\n")
    script.chmod(0o755)
    p = stockade(
        *("--file", f"{data}:data.txt", "--file", f"{data}:sub/dir/copy.txt"),
        *("--file", f"{data}:/tmp/abs.txt", "--file", f"{script}:run.sh"),
        *("--", "/bin/sh", "-c", "cat /box/data.txt /box/sub/dir/copy.txt /tmp/abs.txt; ./run.sh"),
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"payload\n" * 3 + b"script ran in /box\n"


def test_stdin_file_feeds_stdin(tmp_path: Path) -> None:
    blob = os.urandom(1 << 20)
    (tmp_path / "in.bin").write_bytes(blob)
    p = stockade("--stdin", str(tmp_path / "in.bin"), "--", "/usr/bin/sha256sum")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[0].decode() == hashlib.sha256(blob).hexdigest()


def test_our_stdin_passes_through_when_it_is_not_a_terminal() -> None:
    """As `docker run -i` or a plain pipe: isolate and nsjail pass their stdin on too."""
    p = stockade("--stdin", "-", "--", "/usr/bin/wc", "-c", stdin=b"12345")
    assert p.stdout.strip() == b"5", p.stderr
    p = stockade("--", "/usr/bin/wc", "-c", stdin=b"passed without --stdin")
    assert p.stdout.strip() == b"22", p.stderr
    p = stockade("--stdin", "/dev/null", "--", "/usr/bin/wc", "-c", stdin=b"not this")
    assert p.stdout.strip() == b"0", p.stderr


def test_output_streams_as_the_program_writes_it() -> None:
    """Without --json, a line is ours as soon as the program writes it, not at its exit."""
    code = "import time; print('first', flush=True); time.sleep(1.5); print('second')"
    proc = subprocess.Popen(
        [STOCKADE, "run", "--", PYTHON, "-c", code],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        first = proc.stdout.readline()
        seen_first = time.monotonic()
        second = proc.stdout.readline()
        gap = time.monotonic() - seen_first
    finally:
        proc.wait(timeout=30)
    assert (first, second, proc.returncode) == (b"first\n", b"second\n", 0)
    assert gap >= 1.0, f"the first line came only {gap:.2f} s before the second"


def test_a_size_without_a_unit_is_refused() -> None:
    """isolate reads --fsize 1024 as KB, nsjail as bytes: Stockade asks which."""
    p = stockade("--fsize", "1024", "--", "/bin/true")
    assert p.returncode == 2 and b"'1024' needs a unit" in p.stderr, p.stderr


def test_version() -> None:
    p = subprocess.run([STOCKADE, "--version"], capture_output=True, timeout=30, check=False)
    assert p.returncode == 0 and p.stdout.startswith(b"stockade "), p


def test_program_options_are_not_ours() -> None:
    p = stockade("/bin/echo", "--json", "--time", "1")
    assert (p.returncode, p.stdout) == (0, b"--json --time 1\n")


def test_wall_time_flag_kills_and_exits_124() -> None:
    started = time.monotonic()
    p = stockade("--wall-time", "0.5", "--", "/bin/sleep", "10")
    assert p.returncode == 124, p.stderr
    assert b"wall clock" in p.stderr
    assert time.monotonic() - started < 5


def test_time_flag_is_a_cpu_limit() -> None:
    data = as_json("--time", "0.3", "--", PYTHON, "-c", "while True: pass")
    assert data["status"] == "TO" and 0.3 <= data["time"] <= 0.5, data


def test_mem_flag_is_a_memory_limit() -> None:
    data = as_json("--mem", "32M", "--", PYTHON, "-c", "b = bytearray(100 << 20)")
    assert data["status"] == "MLE", data


def test_output_limit_flag_caps_output() -> None:
    p = stockade("--output-limit", "1K", "--", PYTHON, "-c", "print('x' * 100000)")
    assert p.returncode == 153, p.stderr
    assert p.stdout == b"x" * 1024


def test_run_exits_promptly() -> None:
    """A one-shot run starts a launcher (zygote, template, warm boxes) and closes it."""
    started = time.monotonic()
    p = stockade("--", "/bin/true")
    assert p.returncode == 0
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_the_run_and_its_box(sig: signal.Signals) -> None:
    marker = f"{31 + sig / 10:.1f}"  # an argv no other process has
    p = subprocess.Popen([STOCKADE, "run", "--", "/bin/sleep", marker], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not _sleepers(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sleepers(marker), "the box never started"
        p.send_signal(sig)
        assert p.wait(timeout=10) == 128 + sig
    finally:
        p.kill()
        p.wait()
    assert not _sleepers(marker)


def test_a_killed_cli_does_not_leave_its_box_running() -> None:
    """SIGKILL gives the CLI no chance to clean up (a worker killed by the OOM killer, say).
    The box must still end: nothing else enforces its wall time once the launcher is gone."""
    marker = "33.9"
    p = subprocess.Popen([STOCKADE, "run", "--wall-time", "60", "--", "/bin/sleep", marker])
    try:
        deadline = time.monotonic() + 10
        while not _sleepers(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sleepers(marker), "the box never started"
        p.kill()
        p.wait()
        deadline = time.monotonic() + 5
        while _sleepers(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _sleepers(marker), "the box outlived its killed launcher by 5 s"
    finally:
        p.kill()
        p.wait()
        _clean_after_killed_launcher(p.pid, marker)


def _clean_after_killed_launcher(launcher_pid: int, marker: str) -> None:
    """Whatever the failure above left: the box's program (ours, by pid), then the killed
    launcher's empty cgroups (named <launcher pid>-<n>), so later tests start clean."""
    for pid in _sleepers(marker):
        os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 5
    for d in Path("/sys/fs/cgroup").glob(f"*/stockade/{launcher_pid}-*"):
        while d.exists() and time.monotonic() < deadline:
            try:
                d.rmdir()
            except OSError:
                time.sleep(0.05)  # EBUSY until the box's init has exited


def _sleepers(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd[:2] == [b"/bin/sleep", marker.encode()]:
            found.append(pid)
    return found
