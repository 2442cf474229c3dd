"""`stockade doctor`: what on this host stops or disturbs boxes, each with its fix (like
isolate-check-environment). Exits 1 when any check FAILs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from sandbox.config import HostConfig
from sandbox.doctor.checks import Finding, Level, exit_code
from sandbox.doctor.host import Check, Options, run_checks


def add_doctor_parser(subparsers: Any) -> None:
    """Add `doctor` to a parser's subparsers."""
    p = subparsers.add_parser(
        "doctor",
        help="check this host: cgroups, namespaces, seccomp, KVM, tiers, timing, disk",
        description=__doc__,
    )
    p.add_argument("--json", action="store_true", help="print a JSON list of findings")
    p.add_argument("--kernel", help="a guest kernel to boot under KVM (default: /boot's)")


def format_text(findings: Sequence[Finding]) -> str:
    width = max((len(f.check) for f in findings), default=0)
    lines = []
    for f in findings:
        lines.append(f"{f.level.value:<5} {f.check:<{width}}  {f.detail}")
        if f.fix and f.level is not Level.OK:
            lines.append(f"{'':<5} {'':<{width}}  fix: {f.fix}")
    counts = {level: sum(f.level is level for f in findings) for level in Level}
    lines.append(", ".join(f"{n} {level.value}" for level, n in counts.items()))
    return "\n".join(lines) + "\n"


def run_doctor(args: argparse.Namespace, extra: Sequence[tuple[str, Check]] = ()) -> int:
    """Run every check (bounded in time), the host's and the caller's `extra`, and print the
    findings."""
    findings = run_checks(Options(HostConfig.from_env(), args.kernel), extra)
    if args.json:
        sys.stdout.write(json.dumps([f.to_dict() for f in findings], indent=1) + "\n")
    else:
        sys.stdout.write(format_text(findings))
    sys.stdout.flush()
    return exit_code(findings)
