"""The box's command line: `run` runs one program in a box, like isolate or nsjail, beside the
box's other commands; the worker and the service add theirs (service.cli is `stockade`)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import math
import os
import queue
import signal
import stat
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from sandbox.cli import config, doctor, layers, microvm
from sandbox.errors import SandboxError, SpecError
from sandbox.result import BoxResult, Status
from sandbox.sizes import parse_size
from sandbox.spec import TIERS, BoxSpec, FileIn, Limits, validate
from sandbox.stdio import Stdio

# Exit codes of `stockade run` without --json, for statuses that are not the program's own.
EXIT_USAGE = 2  # as argparse
EXIT_NOT_FOUND = 127  # as a shell's "command not found"
EXIT_TIMEOUT = 124  # as timeout(1)
EXIT_SANDBOX = 125  # as docker run's own failures
EXIT_MEMORY = 137
EXIT_OUTPUT = 153

# The flag behind each field that validate() names (a SpecError's "field: rule" sentences).
FIELD_FLAGS = {
    "argv": "PROGRAM",
    "limits.cpu_time_s": "--time",
    "limits.wall_time_s": "--wall-time",
    "limits.memory_bytes": "--mem",
    "limits.pids": "--pids",
    "limits.output_bytes": "--output-limit",
    "limits.fsize_bytes": "--fsize",
    "limits.scratch_bytes": "--scratch",
    "limits.stack_bytes": "--stack",
    "files": "--file",
    "env": "--env",
    "profile": "--profile",
    "rootfs": "--rootfs",
    "network": "--net",
}


def _size(text: str) -> int:
    # isolate reads a bare number as KB and nsjail as bytes: a unit is required, not guessed.
    if text.strip().isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} needs a unit: {text}B, {text}K, {text}M or {text}G"
        )
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number above 0 seconds")
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


def _stdin(text: str) -> bytes:
    try:
        if text == "-":
            return sys.stdin.buffer.read()
        with open(text, "rb") as f:
            return f.read()
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {e.strerror}") from None


@dataclass(frozen=True)
class Commands:
    """Subcommands of one part of Stockade: add(subparsers) adds them, run(args) runs any
    of them."""

    add: Callable[[argparse._SubParsersAction[Any]], None]
    run: Callable[[argparse.Namespace], int]


# The box's own commands besides `run`.
BOX_COMMANDS = (
    Commands(config.add_config_parser, config.run_config),
    Commands(layers.add_layers_parser, layers.run_layers),
    Commands(microvm.add_microvm_parser, microvm.run_microvm),
    Commands(doctor.add_doctor_parser, doctor.run_doctor),
)


def build_parser(groups: Sequence[Commands] = BOX_COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stockade", description=__doc__, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"stockade {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = Limits()
    run = sub.add_parser(
        "run",
        help="run one program in a fresh box",
        description="Run PROGRAM in a fresh box. Without --json its output streams through "
        "as it comes (a microVM's at the end), capped at --output-limit, and the exit status "
        "mirrors the program's (128+N for signal N). Our stdin becomes the program's when it "
        "is not a terminal. Sizes take a unit: B, K, M or G (64M).",
        allow_abbrev=False,
    )
    run.set_defaults(run_parser=run)
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
    run.add_argument(
        "--file",
        type=_file,
        action="append",
        default=[],
        metavar="HOST:BOX",
        help="copy a host file into the box (read now, never bound); repeatable",
    )
    run.add_argument(
        "--env",
        type=_env,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a variable in the program's environment (it starts empty); repeatable",
    )
    run.add_argument(
        "--stdin",
        type=_stdin,
        default=None,
        metavar="FILE",
        help="the program's stdin from FILE ('-': ours); default: ours when it is not a "
        "terminal, else empty",
    )
    run.add_argument("--rootfs", default="host", help="host, or an image name")
    run.add_argument("--profile", default="run", help="seccomp profile name (run, compile)")
    run.add_argument(
        "--tier", default="container", choices=TIERS, help="isolation: container, gvisor, microvm"
    )
    # REMAINDER: everything from the first positional on is the program's, options included.
    run.add_argument("program", nargs=argparse.REMAINDER, help="-- PROGRAM [ARGS...]")
    for group in groups:
        before = set(sub.choices)
        group.add(sub)
        for name in set(sub.choices) - before:
            sub.choices[name].set_defaults(run_command=group.run)
    return parser


def spec_from_args(args: argparse.Namespace) -> BoxSpec:
    program = list(args.program)
    if program and program[0] == "--":
        program = program[1:]
    return BoxSpec(
        argv=tuple(program),
        files=tuple(args.file),
        stdin=args.stdin or b"",
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
        tier=args.tier,
    )


def usage_message(problems: Sequence[str]) -> str:
    """validate()'s 'field: rule' sentences, each prefixed with the flag that sets the field."""
    out = []
    for problem in problems:
        field = problem.partition(":")[0]
        flag = FIELD_FLAGS.get(field)
        out.append(f"argument {flag}: {problem}" if flag else problem)
    return "; ".join(out)


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


def _says_why(result: BoxResult) -> bool:
    """Whether the verdict needs a line of its own on stderr: every status but the program's
    own exit, and a program that never ran (a shell's 127)."""
    return result.status not in (Status.OK, Status.RE) or result.exit_code == EXIT_NOT_FOUND


def print_result(result: BoxResult, as_json: bool, streamed: bool = False) -> int:
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        sys.stdout.flush()
        return EXIT_SANDBOX if result.status is Status.XX else 0
    if not streamed:
        sys.stdout.buffer.write(result.stdout)
        sys.stdout.flush()
        sys.stderr.buffer.write(result.stderr)
    if _says_why(result):
        sys.stderr.write(f"stockade: {result.status}: {result.message}\n")
    sys.stderr.flush()
    return exit_code_for(result)


class Echo:
    """The program's output written out as it comes, by a thread of its own: the box's
    watcher only queues it, so a reader that stops reading cannot stall the box's limits."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[int, bytes] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="echo", daemon=True)
        self._thread.start()

    def put(self, stream: int, data: bytes) -> None:
        self._queue.put((stream, data))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _write(self) -> None:
        gone = False  # the reader went away (| head): the rest is dropped, the box goes on
        while (item := self._queue.get()) is not None:
            if gone:
                continue
            out = sys.stdout if item[0] == 1 else sys.stderr
            try:
                out.buffer.write(item[1])
                out.flush()
            except BrokenPipeError:
                gone = True


def _version() -> str:
    try:
        return importlib.metadata.version("stockade")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _interrupted(signum: int, frame: FrameType | None) -> None:
    # Unwinds through the launcher's teardown and close, so the box and its cgroup go too.
    raise SystemExit(128 + signum)


def cmd_run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.run_parser
    spec = spec_from_args(args)
    if not spec.argv:
        parser.error("a program is required: stockade run [OPTIONS] -- PROGRAM [ARGS...]")
    # Checked before any box machinery starts: a usage error costs no zygote.
    if problems := validate(spec):
        parser.error(usage_message(problems))
    if args.stdin is None and not sys.stdin.isatty():
        spec = dataclasses.replace(spec, stdin=sys.stdin.buffer.read())
    from sandbox.launcher import Launcher  # the box's own imports only when a box runs

    signal.signal(signal.SIGTERM, _interrupted)
    echo = None if args.json or spec.tier == "microvm" else Echo()
    try:
        with Launcher() as launcher:
            try:
                result = launcher.run(spec, Stdio(echo=echo.put if echo else None))
            finally:
                if echo is not None:
                    echo.close()
            return print_result(result, args.json, streamed=echo is not None)
    except SpecError as e:
        parser.error(usage_message(e.problems))
    except (SandboxError, OSError) as e:
        print(f"stockade: the box could not start: {e}", file=sys.stderr)
        return EXIT_SANDBOX


def main(argv: Sequence[str] | None = None, groups: Sequence[Commands] = BOX_COMMANDS) -> int:
    args = build_parser(groups).parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        code: int = args.run_command(args)
        return code
    except BrokenPipeError:
        # The reader went away (stockade run ... | head): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
