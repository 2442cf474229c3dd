"""The worker's commands: `stockade judge` grades a submission against an ICPC/Kattis problem
package, `stockade languages` self-tests every language file and says which are served."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sandbox.cli.main import Commands
from sandbox.errors import SandboxError
from sandbox.launcher import Launcher
from worker.jobs.languages import LanguageError, load_languages
from worker.judge import Judge
from worker.problems import ProblemError, judge_problem, language_for
from worker.selftest import self_test_all

JUDGE_ACCEPTED = 0
JUDGE_REJECTED = 1  # any verdict but AC
JUDGE_BROKEN = 2  # the package, the submission file or the box could not be used


def add_judge_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "judge",
        help="grade a submission against an ICPC/Kattis problem package",
        description="Compile SUBMISSION_FILE once, run it on every case of PROBLEM_DIR's "
        "data/sample and data/secret in fresh boxes, check each output with the package's "
        "validator and print a per-case table and the final verdict. Exit status: 0 AC, "
        "1 any other verdict, 2 the package or the submission could not be used.",
        allow_abbrev=False,
    )
    p.add_argument("problem_dir", metavar="PROBLEM_DIR", type=Path)
    p.add_argument("submission", metavar="SUBMISSION_FILE", type=Path)
    p.add_argument("--language", default="", help="language key or Judge0 id (by extension)")
    p.add_argument("--rootfs", default="host", help="image the boxes run on ('host')")
    p.add_argument("--json", action="store_true", help="print one JSON object: verdict, cases")


def run_judge(args: argparse.Namespace) -> int:

    try:
        source = args.submission.read_text(encoding="utf-8", errors="replace")
        languages = load_languages()
        lang_id = language_for(languages, str(args.submission), args.language)
        with Launcher() as launcher:
            judge = Judge(launcher, languages, rootfs=args.rootfs)
            result = judge_problem(judge, args.problem_dir, source, lang_id)
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


WORKER_COMMANDS = (
    Commands(add_judge_parser, run_judge),
    Commands(add_languages_parser, run_languages),
)
