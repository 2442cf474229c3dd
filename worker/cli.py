"""The worker's commands: `stockade judge` grades a submission against an ICPC/Kattis problem
package, `stockade languages` self-tests every language file and says which are served,
`stockade grade` (worker/grading/cli.py) grades a class's submissions to an assignment."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sandbox.cli.main import Commands
from sandbox.errors import SandboxError
from sandbox.launcher import Launcher
from worker.grading.cli import add_grade_parser, run_grade
from worker.jobs.languages import Language, LanguageError, load_languages
from worker.jobs.settings import PACKAGE_MAX_MEMORY_MIB
from worker.problems import ProblemError, load_package
from worker.problems.programs import Builder
from worker.problems.run import Limits, PackageJudge
from worker.problems.verify import Report, derive_time_limit, verify
from worker.selftest import self_test_all

JUDGE_ACCEPTED = 0
JUDGE_REJECTED = 1  # any verdict but AC
JUDGE_BROKEN = 2  # the package, the submission file or the box could not be used


def add_judge_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "judge",
        help="grade a submission against an ICPC/Kattis problem package",
        description="Compile SUBMISSION (a file, or a directory of one program's files) "
        "once, run it on every case of PROBLEM_DIR's "
        "data/sample and data/secret in fresh boxes, check each output with the package's "
        "validator and print a per-case table and the final verdict. Exit status: 0 AC, "
        "1 any other verdict, 2 the package or the submission could not be used.",
        allow_abbrev=False,
    )
    p.add_argument("problem_dir", metavar="PROBLEM_DIR", type=Path)
    p.add_argument("submission", metavar="SUBMISSION", type=Path, help="a file or a directory")
    p.add_argument(
        "--language",
        default="",
        help="language key or Judge0 id (default: by extension, the contest systems' table)",
    )
    p.add_argument("--rootfs", default="host", help="image the boxes run on ('host')")
    p.add_argument("--json", action="store_true", help="print one JSON object: verdict, cases")


def run_judge(args: argparse.Namespace) -> int:
    try:
        languages = load_languages()
        with Launcher() as launcher:
            pj = package_judge(launcher, languages, args.problem_dir, args.rootfs)
            sources = pj.sources(args.submission, args.language)
            if sources.note:
                print(f"stockade judge: {sources.note}", file=sys.stderr)
            tl = derive_time_limit(pj)
            if pj.package.limits.time_limit_s is None:
                # The package states none: say where the limit came from.
                print(
                    f"stockade judge: time limit {tl:g} s, derived from submissions/accepted/",
                    file=sys.stderr,
                )
            limits = Limits(tl, pj.package.limits.tle_threshold(tl))
            result = pj.judge(sources, limits)
    except (OSError, ProblemError, LanguageError, SandboxError) as e:
        print(f"stockade judge: {e}", file=sys.stderr)
        return JUDGE_BROKEN
    if args.json:
        cases = [
            {"name": c.name, "verdict": c.verdict.value, "time": c.time, "memory": c.memory}
            for c in result.cases
        ]
        out = {"verdict": result.verdict.value, "score": result.score, "cases": cases}
        out["message"] = result.message
        if result.compile_output:
            out["compile_output"] = result.compile_output
        print(json.dumps(out))
    else:
        print(f"{'case':<32} {'verdict':<8} {'time':>8} {'memory':>10}  message")
        for c in result.cases:
            mib = c.memory / (1 << 20)
            msg = c.message.splitlines()[0][:60] if c.message else ""
            print(f"{c.name:<32} {c.verdict.value:<8} {c.time:>7.3f}s {mib:>7.1f}MiB  {msg}")
        if result.compile_output:
            print(result.compile_output.rstrip())
        print(f"verdict: {result.verdict.value} ({result.score:g}/{result.max_score:g})")
    return JUDGE_ACCEPTED if result.verdict.value == "AC" else JUDGE_REJECTED


LANGUAGES_ALL_ENABLED = 0
LANGUAGES_SOME_DISABLED = 1
LANGUAGES_BROKEN = 2  # a language file breaks the schema, or the box cannot start


def add_languages_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "languages",
        help="self-test every language and list which are enabled",
        description="Load profiles/languages/*.toml, judge each language's self-test in real "
        "boxes as a submission (compile box, then run box) and list each with its state. "
        "Exit status: 0 all "
        "enabled, 1 some disabled, 2 a language file is invalid or no box could start.",
        allow_abbrev=False,
    )
    p.add_argument("--json", action="store_true", help="print a JSON list of {id, name, ...}")
    p.add_argument(
        "--rootfs",
        default="host",
        help="'host' (default), 'image' for each language's own image, or one image's name",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="KEY",
        help="test only this language (file stem or Judge0 id); repeatable",
    )
    p.add_argument("--workers", type=int, default=4, help="self-tests run at once (4)")


def run_languages(args: argparse.Namespace) -> int:
    try:
        languages = load_languages()
    except LanguageError as e:
        print(f"stockade languages: {e}", file=sys.stderr)
        return LANGUAGES_BROKEN
    if args.only:
        wanted = set(args.only)
        languages = {i: lang for i, lang in languages.items() if {lang.key, str(i)} & wanted}
        unknown = wanted - {lang.key for lang in languages.values()} - set(map(str, languages))
        if unknown:
            print(f"stockade languages: --only: no language {sorted(unknown)}", file=sys.stderr)
            return LANGUAGES_BROKEN
    try:
        with Launcher() as launcher:
            results = self_test_all(launcher, args.rootfs, languages, max(1, args.workers))
    except (SandboxError, OSError) as e:
        print(f"stockade languages: cannot start boxes: {e}", file=sys.stderr)
        return LANGUAGES_BROKEN
    rows = [
        {
            "id": i,
            "key": languages[i].key,
            "name": languages[i].name,
            "enabled": enabled,
            "reason": reason,
        }
        for i, (enabled, reason) in sorted(results.items())
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            state = "enabled" if row["enabled"] else "DISABLED"
            print(f"{row['id']:>4}  {row['name']:<30} {state:<9} {row['reason']}")
    return LANGUAGES_ALL_ENABLED if all(r["enabled"] for r in rows) else LANGUAGES_SOME_DISABLED


def package_judge(
    launcher: Launcher, languages: dict[int, Language], directory: Path, rootfs: str
) -> PackageJudge:
    """The package read once, with the operator's memory maximum (an env setting)."""
    package = load_package(directory, PACKAGE_MAX_MEMORY_MIB.as_int())
    lim = package.limits
    builder = Builder(launcher, languages, rootfs, lim.compile_time_s, lim.compile_memory_mib)
    return PackageJudge(launcher, package, builder, languages)


PROBLEM_OK = 0
PROBLEM_MISMATCH = 1
PROBLEM_BROKEN = 2


def add_problem_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "problem",
        help="problem packages: verify a package against its own submissions",
        allow_abbrev=False,
    )
    sub = p.add_subparsers(dest="problem_command", required=True)
    v = sub.add_parser(
        "verify",
        help="judge every submission of a package and check each gets its folder's verdict",
        description="Run the input validators over every input, judge each entry of "
        "submissions/<folder>/ (accepted, wrong_answer, time_limit_exceeded, run_time_error, "
        "...; an @EXPECTED_RESULTS@: line in a source wins) and print a table. Exit status: "
        "0 all as expected, 1 any mismatch, 2 the package could not be used.",
        allow_abbrev=False,
    )
    v.add_argument("package", metavar="PACKAGE", type=Path)
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.add_argument("--rootfs", default="host", help="image the boxes run on ('host')")
    v.add_argument("--jobs", type=int, default=2, help="submissions judged at once (2)")


def run_problem(args: argparse.Namespace) -> int:
    live = sys.stderr.isatty()

    def progress(done: int, total: int, name: str) -> None:
        # One line rewritten in place on a terminal; a line per step in a log.
        line = f"[{done}/{total}] {name}"
        print(f"\r\033[K{line}" if live else line, end="" if live else "\n", file=sys.stderr)
        sys.stderr.flush()

    try:
        languages = load_languages()
        with Launcher() as launcher:
            report = verify(
                launcher,
                languages,
                args.package,
                PACKAGE_MAX_MEMORY_MIB.as_int(),
                args.rootfs,
                args.jobs,
                progress,
            )
    except (OSError, ProblemError, LanguageError, SandboxError) as e:
        print(f"\nstockade problem verify: {e}", file=sys.stderr)
        return PROBLEM_BROKEN
    if live:
        print(file=sys.stderr)
    print(json.dumps(report_dict(report)) if args.json else report_text(report))
    return PROBLEM_OK if report.ok else PROBLEM_MISMATCH


def report_dict(report: Report) -> dict[str, Any]:
    return {
        "problem": report.problem,
        "version": report.version,
        "time_limit": report.time_limit_s,
        "time_source": report.time_source,
        "ok": report.ok,
        "inputs_checked": report.inputs_checked,
        "input_failures": report.input_failures,
        "submissions": [
            {
                "submission": r.submission,
                "expected": list(r.expected),
                "got": r.result.verdict.value,
                "ok": r.ok,
                "note": r.note,
                "time": r.result.time,
                "score": r.result.score,
                "max_score": r.result.max_score,
                "message": r.result.message,
                "cases": [
                    {"name": c.name, "verdict": c.verdict.value, "time": c.time, "score": c.points}
                    for c in r.result.cases
                ],
            }
            for r in report.rows
        ],
    }


def report_text(report: Report) -> str:
    lines = [
        f"{report.problem} ({report.version}): time limit {report.time_limit_s:g} s "
        f"({report.time_source})",
        f"{'submission':<44} {'expected':<10} {'got':<5} {'time':>7}  cases",
    ]
    for r in report.rows:
        mark = "" if r.ok else "  MISMATCH"
        cases = " ".join(f"{c.name}:{c.verdict.value}" for c in r.result.cases)
        if not r.result.cases:
            cases = r.result.message.splitlines()[0][:60] if r.result.message else ""
        note = f" [{r.note}]" if r.note else ""
        expected = ",".join(r.expected) if len(r.expected) < 3 else "rejected"
        lines.append(
            f"{r.submission:<44} {expected:<10} {r.result.verdict.value:<5} "
            f"{r.result.time:>6.3f}s  {cases}{note}{mark}"
        )
    checked = f"input validators: {report.inputs_checked} checks"
    lines.append(checked + (": all valid" if not report.input_failures else ":"))
    lines.extend(f"  {f}" for f in report.input_failures)
    bad = sum(not r.ok for r in report.rows)
    invalid = len(report.input_failures)
    lines.append("verify: OK" if report.ok else f"verify: {bad} mismatches, {invalid} invalid")
    return "\n".join(lines)


WORKER_COMMANDS = (
    Commands(add_judge_parser, run_judge),
    Commands(add_languages_parser, run_languages),
    Commands(add_problem_parser, run_problem),
    Commands(add_grade_parser, run_grade),
)
