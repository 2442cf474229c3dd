"""`stockade` command line: `stockade run` runs one program in a box, like isolate or nsjail."""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Sequence

from sandbox.errors import SpecError
from sandbox.result import BoxResult, Status
from sandbox.sizes import parse_size
from sandbox.spec import BoxSpec, FileIn, Limits

# Exit codes of `stockade run` without --json, for statuses that are not the program's own.
EXIT_TIMEOUT = 124  # as timeout(1)
EXIT_SANDBOX = 125  # as docker run's own failures
EXIT_MEMORY = 137
EXIT_OUTPUT = 153


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of at least 1")
    return int(text)


def _env(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} must look like KEY=VALUE")
    return key, value


def _file(text: str) -> FileIn:
    host, sep, inside = text.rpartition(":")
    if not sep or not host or not inside:
        raise argparse.ArgumentTypeError(f"{text!r} must look like HOST_PATH:BOX_PATH")
    try:
        with open(host, "rb") as f:
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            return FileIn(inside, f.read(), 0o755 if mode & 0o111 else 0o644)
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot read {host}: {e.strerror}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stockade", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = Limits()
    run = sub.add_parser("run", help="run one program in a fresh box")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    run.add_argument("--time", type=_seconds, default=d.cpu_time_s, help="CPU seconds (5)")
    run.add_argument("--wall-time", type=_seconds, default=d.wall_time_s, help="wall seconds (10)")
    run.add_argument("--mem", type=_size, default=d.memory_bytes, help="memory with swap (256M)")
    run.add_argument("--pids", type=_count, default=d.pids, help="processes and threads (64)")
    run.add_argument(
        "--output-limit", type=_size, default=d.output_bytes, help="stdout+stderr (1M)"
    )
    run.add_argument(
        "--fsize", type=_size, default=d.fsize_bytes, help="largest file written (64M)"
    )
    run.add_argument("--scratch", type=_size, default=d.scratch_bytes, help="writable tmpfs (64M)")
    run.add_argument("--stack", type=_size, default=None, help="stack size (default: --mem)")
    run.add_argument("--net", action="store_true", help="grant outbound networking (NAT only)")
    run.add_argument("--file", type=_file, action="append", default=[], metavar="HOST:BOX")
    run.add_argument("--env", type=_env, action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--stdin", type=argparse.FileType("rb"), default=None, metavar="FILE")
    run.add_argument("--rootfs", default="host", help="host, or an image name")
    run.add_argument("--profile", default="run", help="seccomp profile name (run, compile)")
    run.add_argument("program", nargs=argparse.REMAINDER, help="-- PROGRAM [ARGS...]")
    return parser


def spec_from_args(args: argparse.Namespace) -> BoxSpec:
    program = list(args.program)
    if program and program[0] == "--":
        program = program[1:]
    stdin = args.stdin.read() if args.stdin is not None else b""
    return BoxSpec(
        argv=tuple(program),
        files=tuple(args.file),
        stdin=stdin,
        env=tuple(args.env),
        limits=Limits(
            cpu_time_s=args.time,
            wall_time_s=args.wall_time,
            memory_bytes=args.mem,
            pids=args.pids,
            output_bytes=args.output_limit,
            fsize_bytes=args.fsize,
            scratch_bytes=args.scratch,
            stack_bytes=args.stack,
        ),
        rootfs=args.rootfs,
        profile=args.profile,
        network=args.net,
    )


def exit_code_for(result: BoxResult) -> int:
    match result.status:
        case Status.OK:
            return 0
        case Status.RE:
            return result.exit_code if result.exit_code is not None else 1
        case Status.SG:
            return 128 + (result.signal or 0)
        case Status.TO:
            return EXIT_TIMEOUT
        case Status.MLE:
            return EXIT_MEMORY
        case Status.OLE:
            return EXIT_OUTPUT
    return EXIT_SANDBOX


def cmd_run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from sandbox.api import run

    spec = spec_from_args(args)
    if not spec.argv:
        parser.error("run: a program is required after --")
    try:
        result = run(spec)
    except SpecError as e:
        parser.error("; ".join(e.problems))
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0 if result.status is not Status.XX else EXIT_SANDBOX
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(result.stderr)
    if result.status not in (Status.OK, Status.RE):
        sys.stderr.write(f"stockade: {result.status}: {result.message}\n")
    sys.stderr.flush()
    return exit_code_for(result)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return cmd_run(parser, args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
