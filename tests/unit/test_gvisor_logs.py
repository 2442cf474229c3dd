"""What is read from runsc's logs: the program's wait status, runsc's error, a Sentry crash."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.backends.gvisor import logs as gl

# The tail of a real `runsc run` info log (runsc 0.0~20221219.0) for `sh -c 'exit 3'`.
RUN_LOG = """I1128 01:03:22.093411    9643 container.go:612] Run container, cid: dbg
I1128 01:03:22.099612    9643 container.go:1123] Destroy container, cid: dbg
I1128 01:03:22.099730    9643 main.go:266] Exiting with status: 768
"""


def test_wait_status_is_the_raw_one_runsc_logged(tmp_path: Path) -> None:
    (tmp_path / "run.log").write_text(RUN_LOG)
    assert gl.wait_status(str(tmp_path)) == 768  # exit(3)
    (tmp_path / "run.log").write_text(RUN_LOG.replace("768", "2"))
    assert gl.wait_status(str(tmp_path)) == 2  # SIGINT, where runsc's exit code says 130


def test_no_wait_status_without_the_line(tmp_path: Path) -> None:
    assert gl.wait_status(str(tmp_path)) is None  # no log at all
    (tmp_path / "run.log").write_text(RUN_LOG.rsplit("I1128", 1)[0])
    assert gl.wait_status(str(tmp_path)) is None  # runsc was killed before its last words
    # A line that only contains the words elsewhere (an argv in a log) does not count.
    (tmp_path / "run.log").write_text("I1128 x.go:1] EXEC: [echo Exiting with status: 5]\n")
    assert gl.wait_status(str(tmp_path)) is None


def test_sandbox_and_gofer_logs_go_nowhere(tmp_path: Path) -> None:
    gl.quiet_sandbox_logs(str(tmp_path))
    for command in ("boot", "gofer"):
        assert os.readlink(tmp_path / f"{command}.log") == os.devnull
    assert not (tmp_path / "run.log").exists()


def test_runsc_error_and_sentry_panic(tmp_path: Path) -> None:
    assert gl.runsc_error(str(tmp_path)) == gl.sentry_panic(str(tmp_path)) == ""
    (tmp_path / "runsc.log").write_text('{"level":"error","msg":"creating container: x"}\n')
    assert gl.runsc_error(str(tmp_path)) == "creating container: x"
    (tmp_path / "panic.log").write_text("notice: raw socket\npanic: oh no\n")
    assert gl.sentry_panic(str(tmp_path)) == "panic: oh no"


def test_the_wait_status_is_found_at_the_end_of_a_long_run_log(tmp_path: Path) -> None:
    noise = "I1207 10:00:00.000000 1 main.go:1] a line of runsc's own\n" * 2000  # > 64 KiB
    (tmp_path / "run.log").write_text(
        noise + "I1207 10:00:01.0 1 main.go:2] Exiting with status: 139\n"
    )
    assert gl.wait_status(str(tmp_path)) == 139
