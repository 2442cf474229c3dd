"""`stockade run` without a box: flags to BoxSpec, usage errors naming the flag, exit codes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from sandbox.cli import main as cli
from sandbox.result import BoxResult, Status
from sandbox.spec import MIB, BoxSpec, FileIn, Limits, validate
from service.commands import restart_plan


def spec_of(*argv: str) -> BoxSpec:
    return cli.spec_from_args(cli.build_parser().parse_args(["run", *argv]))


def test_defaults_are_the_spec_defaults() -> None:
    assert spec_of("--", "/bin/true") == BoxSpec(argv=("/bin/true",))


def test_every_flag_reaches_the_spec(tmp_path: Path) -> None:
    stdin = tmp_path / "in"
    stdin.write_bytes(b"\x00input")
    spec = spec_of(
        *("--time", "1.5", "--wall-time", "3", "--mem", "64M", "--pids", "9"),
        *("--output-limit", "2K", "--fsize", "1M", "--scratch", "8M", "--stack", "512K"),
        *("--net", "--env", "A=1", "--env", "B=x=y", "--env", "C=", "--stdin", str(stdin)),
        *("--rootfs", "host", "--profile", "compile", "--", "prog", "arg"),
    )
    assert spec.argv == ("prog", "arg")
    assert spec.limits == Limits(
        cpu_time_s=1.5,
        wall_time_s=3.0,
        memory_bytes=64 * MIB,
        pids=9,
        output_bytes=2048,
        fsize_bytes=MIB,
        scratch_bytes=8 * MIB,
        stack_bytes=512 * 1024,
    )
    assert spec.env == (("A", "1"), ("B", "x=y"), ("C", ""))
    assert spec.stdin == b"\x00input"
    assert (spec.network, spec.rootfs, spec.profile) == (True, "host", "compile")


def test_file_flag_reads_the_host_file_and_keeps_the_exec_bit(tmp_path: Path) -> None:
    data, script = tmp_path / "data.txt", tmp_path / "run.sh"
    data.write_bytes(b"hello")
    script.write_bytes(b"#!/bin/sh\n")
    script.chmod(0o755)
    spec = spec_of("--file", f"{data}:in/data.txt", "--file", f"{script}:/tmp/run.sh", "--", "x")
    assert spec.files == (
        FileIn("in/data.txt", b"hello", 0o644),
        FileIn("/tmp/run.sh", b"#!/bin/sh\n", 0o755),
    )


@pytest.mark.parametrize(
    ("argv", "program"),
    [
        (["--", "/bin/echo", "hi"], ("/bin/echo", "hi")),
        (["/bin/echo", "hi"], ("/bin/echo", "hi")),
        # Everything after the program is the program's, options included.
        (["/bin/echo", "--json", "--time", "1"], ("/bin/echo", "--json", "--time", "1")),
        (["--json", "--", "/bin/echo", "--", "x"], ("/bin/echo", "--", "x")),
        (["--", "/bin/echo", "-n"], ("/bin/echo", "-n")),
    ],
)
def test_program_and_its_arguments(argv: list[str], program: tuple[str, ...]) -> None:
    assert spec_of(*argv).argv == program


def test_options_after_the_program_are_not_ours() -> None:
    args = cli.build_parser().parse_args(["run", "/bin/echo", "--json"])
    assert args.json is False


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--mem", "12Q"], "--mem"),
        (["--mem", "1K"], "--mem"),  # a size, but under validate()'s floor
        (["--mem", "-1"], "--mem"),
        (["--time", "-1"], "--time"),
        (["--time", "0"], "--time"),
        (["--time", "nan"], "--time"),
        (["--time", "inf"], "--time"),
        (["--time", "soon"], "--time"),
        (["--wall-time", "0"], "--wall-time"),
        (["--pids", "0"], "--pids"),
        (["--pids", "1.5"], "--pids"),
        (["--output-limit", "lots"], "--output-limit"),
        (["--fsize", "1X"], "--fsize"),
        (["--scratch", "1K"], "--scratch"),
        (["--stack", "1K"], "--stack"),
        (["--env", "NOVALUE"], "--env"),
        (["--env", "=x"], "--env"),
        (["--file", "/nonexistent/stockade-input:x"], "--file"),
        (["--file", "no-colon"], "--file"),
        (["--file", "/etc/hostname:/etc/x"], "--file"),
        (["--file", "/etc/hostname:../../x"], "--file"),
        (["--stdin", "/nonexistent/stockade-input"], "--stdin"),
        (["--profile", "../../etc/x"], "--profile"),
        (["--rootfs", "/"], "--rootfs"),
        (["--bogus"], "--bogus"),
        (["--js"], "--js"),  # no abbreviations: --js is not --json
    ],
)
def test_bad_flags_are_usage_errors_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["run", *argv, "--", "/bin/true"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "error" in err, err


@pytest.mark.parametrize("argv", [["run"], ["run", "--"], ["run", "--json", "--"], []])
def test_a_program_is_required(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_every_limit_validate_can_name_maps_to_a_flag() -> None:
    bad = Limits(
        cpu_time_s=0,
        wall_time_s=0,
        memory_bytes=0,
        pids=0,
        output_bytes=-1,
        fsize_bytes=-1,
        scratch_bytes=0,
        stack_bytes=0,
    )
    problems = validate(BoxSpec(argv=("x",), limits=bad))
    assert len(problems) == 8
    message = cli.usage_message(problems)
    for flag in ("--time", "--wall-time", "--mem", "--pids", "--output-limit", "--fsize"):
        assert f"argument {flag}: limits." in message
    assert "argument --scratch: limits." in message and "argument --stack: limits." in message


def test_usage_message_keeps_unmapped_problems() -> None:
    assert cli.usage_message(["limits.nofile: must be at least 8, got 1"]) == (
        "limits.nofile: must be at least 8, got 1"
    )


def result(status: Status, **changes: object) -> BoxResult:
    base = BoxResult(status, None, None, 0.01, 0.02, 4096, b"", b"", "msg")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("res", "code"),
    [
        (result(Status.OK, exit_code=0), 0),
        (result(Status.RE, exit_code=3), 3),
        (result(Status.RE, exit_code=127), 127),
        (result(Status.SG, signal=11), 139),
        (result(Status.SG, signal=6), 134),
        (result(Status.TO), 124),
        (result(Status.MLE, signal=9), 137),
        (result(Status.OLE), 153),
        (result(Status.XX), 125),
    ],
    ids=["ok", "re", "re127", "segv", "abort", "to", "mle", "ole", "xx"],
)
def test_exit_status_mirrors_the_program(res: BoxResult, code: int) -> None:
    assert cli.exit_code_for(res) == code


def test_plain_output_passes_through_exactly(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    res = result(Status.RE, exit_code=3, stdout=b"\x00out\xff", stderr=b"err\n")
    assert cli.print_result(res, as_json=False) == 3
    out, err = capsysbinary.readouterr()
    assert (out, err) == (b"\x00out\xff", b"err\n")  # the program's own exit: no comment


def test_plain_output_says_why_for_a_limit(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    res = result(Status.TO, stderr=b"partial\n", message="Time limit exceeded (wall clock, 1 s)")
    assert cli.print_result(res, as_json=False) == 124
    err = capsysbinary.readouterr().err
    assert err == b"partial\nstockade: TO: Time limit exceeded (wall clock, 1 s)\n"


def test_json_output_is_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    res = result(Status.SG, signal=11, stdout=b"o", message="Killed by signal 11 (SIGSEGV)")
    assert cli.print_result(res, as_json=True) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    data = json.loads(out)
    assert data["status"] == "SG" and data["signal"] == 11 and data["stdout"] == "o"
    assert set(data) >= {"exit_code", "time", "wall_time", "memory", "stderr", "message"}


def test_json_output_of_a_sandbox_failure_exits_125(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.print_result(result(Status.XX), as_json=True) == 125
    assert json.loads(capsys.readouterr().out)["status"] == "XX"


def test_every_run_option_has_help_text() -> None:
    run = cli.build_parser()._subparsers._group_actions[0].choices["run"]
    missing = [a.option_strings or a.dest for a in run._actions if not a.help]
    assert not missing, missing


@pytest.mark.parametrize("flag", ["--mem", "--output-limit", "--fsize", "--scratch", "--stack"])
def test_a_size_needs_a_unit(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args(["run", flag, "1024", "--", "/bin/true"])
    assert e.value.code == 2
    assert f"argument {flag}: '1024' needs a unit" in capsys.readouterr().err


def test_a_worker_that_celery_gave_up_on_runs_again_with_a_growing_delay() -> None:
    assert restart_plan(0, 0.5) == (1, 1.0)
    assert restart_plan(1, 0.5) == (2, 2.0)
    assert restart_plan(4, 3.0) == (5, 16.0)
    assert restart_plan(9, 3.0) == (10, 30.0)  # capped
    assert restart_plan(9, 61.0) == (1, 1.0)  # a healthy run: the count starts over
