"""`stockade judge PROBLEM_DIR SUBMISSION_FILE`: grade a submission against an ICPC package."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError

EXIT_ACCEPTED = 0
EXIT_REJECTED = 1  # any verdict but AC
EXIT_BROKEN = 2  # the package, the submission file or the box could not be used


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
    # worker/ is imported here only: the box must stay usable without the judge.
    from sandbox.launcher import Launcher
    from worker.judge import Judge
    from worker.languages import LanguageError, load_languages
    from worker.problems import ProblemError, judge_problem, language_for

    try:
        source = args.submission.read_text(encoding="utf-8", errors="replace")
        languages = load_languages()
        lang_id = language_for(languages, str(args.submission), args.language)
        with Launcher() as launcher:
            judge = Judge(launcher, languages, rootfs=args.rootfs)
            result = judge_problem(judge, args.problem_dir, source, lang_id)
    except (OSError, ProblemError, LanguageError, SandboxError) as e:
        print(f"stockade judge: {e}", file=sys.stderr)
        return EXIT_BROKEN
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
    return EXIT_ACCEPTED if result.verdict.value == "AC" else EXIT_REJECTED
