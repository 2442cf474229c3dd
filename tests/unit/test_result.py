"""classify(): which verdict wins when several things happened, and BoxResult.to_dict()."""

from __future__ import annotations

import dataclasses
import json
import signal

import pytest

from sandbox.result import BoxResult, Observed, Status, classify


def exited(code: int) -> int:
    """A raw wait status for exit(code) (wait(2): the code in the second byte)."""
    return (code & 0xFF) << 8


def killed(sig: int) -> int:
    return sig


def obs(**changes: object) -> Observed:
    base = Observed(
        wait_status=exited(0),
        cpu_time_s=0.1,
        wall_time_s=0.2,
        oom_killed=False,
        output_exceeded=False,
        wall_exceeded=False,
        cpu_limit_s=1.0,
        wall_limit_s=2.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_exit_zero_is_ok() -> None:
    assert classify(obs()) == (Status.OK, 0, None, "Exited normally")


@pytest.mark.parametrize("code", [1, 3, 127, 255])
def test_nonzero_exit_is_re_with_the_code(code: int) -> None:
    status, exit_code, sig, message = classify(obs(wait_status=exited(code)))
    assert (status, exit_code, sig) == (Status.RE, code, None)
    assert str(code) in message


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGABRT, signal.SIGKILL, signal.SIGFPE])
def test_signal_death_is_sg_with_the_signal_named(sig: signal.Signals) -> None:
    status, code, got, message = classify(obs(wait_status=killed(sig)))
    assert (status, code, got) == (Status.SG, None, int(sig))
    assert sig.name in message and str(int(sig)) in message


def test_sigxfsz_is_sg_saying_file_size() -> None:
    status, code, sig, message = classify(obs(wait_status=killed(signal.SIGXFSZ)))
    assert (status, code, sig) == (Status.SG, None, signal.SIGXFSZ)
    assert "File size limit exceeded" in message and "SIGXFSZ" in message


def test_sigxcpu_is_time_limit() -> None:
    # RLIMIT_CPU's soft limit (setrlimit(2)) is the backstop behind the cgroup's accounting.
    status, _, sig, _ = classify(obs(wait_status=killed(signal.SIGXCPU), cpu_time_s=0.5))
    assert (status, sig) == (Status.TO, signal.SIGXCPU)


def test_cpu_at_the_limit_is_time_limit_even_after_a_clean_exit() -> None:
    status, _, _, message = classify(obs(cpu_time_s=1.0))
    assert status is Status.TO
    assert "CPU" in message and "1.000" in message


def test_wall_limit_message_says_wall_clock() -> None:
    status, _, sig, message = classify(obs(wait_status=killed(signal.SIGKILL), wall_exceeded=True))
    assert (status, sig) == (Status.TO, signal.SIGKILL)
    assert "wall clock" in message and "2 s" in message


def test_oom_is_mle() -> None:
    status, _, sig, message = classify(obs(wait_status=killed(signal.SIGKILL), oom_killed=True))
    assert (status, sig) == (Status.MLE, signal.SIGKILL)
    assert message == "Memory limit exceeded"


def test_output_limit_is_ole() -> None:
    status, _, _, message = classify(obs(wait_status=None, output_exceeded=True))
    assert status is Status.OLE
    assert message == "Output limit exceeded"


# Precedence: output > cpu > wall > OOM > signal > exit code. Each case holds every lower
# condition too, so the first that wins is the one listed.
ALL_BREACHES = {
    "output_exceeded": True,
    "cpu_time_s": 1.5,
    "wall_exceeded": True,
    "oom_killed": True,
    "wait_status": killed(signal.SIGKILL),
}
PRECEDENCE = [
    ("output_exceeded", Status.OLE, "Output"),
    ("cpu_time_s", Status.TO, "CPU"),
    ("wall_exceeded", Status.TO, "wall clock"),
    ("oom_killed", Status.MLE, "Memory"),
    ("wait_status", Status.SG, "signal"),
]


@pytest.mark.parametrize(("drop", "expected", "words"), PRECEDENCE, ids=[p[0] for p in PRECEDENCE])
def test_precedence(drop: str, expected: Status, words: str) -> None:
    higher = [name for name, _, _ in PRECEDENCE[: [p[0] for p in PRECEDENCE].index(drop)]]
    off: dict[str, object] = {"output_exceeded": False, "cpu_time_s": 0.1}
    off |= {"wall_exceeded": False, "oom_killed": False}
    changes = dict(ALL_BREACHES)
    for name in higher:
        changes[name] = off[name]
    status, _, _, message = classify(obs(**changes))
    assert status is expected
    assert words in message


def test_signal_outranks_exit_code() -> None:
    # Only one of the two can be in a wait status; a signal death carries no exit code.
    status, code, sig, _ = classify(obs(wait_status=killed(signal.SIGTERM)))
    assert (status, code, sig) == (Status.SG, None, signal.SIGTERM)


def test_exec_error_is_re_127_with_the_reason() -> None:
    result = classify(obs(wait_status=None, exec_error="prog: command not found (execve: ENOENT)"))
    status, code, sig, message = result
    assert (status, code, sig) == (Status.RE, 127, None)
    assert "command not found" in message


def result(**changes: object) -> BoxResult:
    base = BoxResult(
        status=Status.RE,
        exit_code=3,
        signal=None,
        time=0.123456789,
        wall_time=1.0000001,
        memory=4096,
        stdout=b"out\xff",
        stderr=b"err",
        message="Exited with code 3",
        files={"/box/x": b"data"},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_to_dict_has_the_interface_keys() -> None:
    d = result().to_dict()
    assert set(d) >= {"status", "exit_code", "signal", "time", "wall_time", "memory"}
    assert set(d) >= {"stdout", "stderr", "message"}
    assert d["status"] == "RE" and d["exit_code"] == 3 and d["signal"] is None
    assert d["memory"] == 4096 and d["message"] == "Exited with code 3"


def test_to_dict_is_json_text() -> None:
    d = result().to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["stdout"] == "out\ufffd"  # undecodable bytes become U+FFFD, never an exception
    assert d["stderr"] == "err"
    assert d["time"] == pytest.approx(0.1235) and d["wall_time"] == pytest.approx(1.0)


def test_status_values_are_the_issue_taxonomy() -> None:
    assert {s.value for s in Status} == {"OK", "RE", "SG", "TO", "MLE", "OLE", "XX"}
    assert Status("MLE") is Status.MLE and f"{Status.TO}" == "TO"
