"""A class's grades as a CSV gradebook, and one submission's results as a readable report."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
REPORT_LINES = 40  # of each test's output in the text report


def write_csv(out: TextIO, test_names: Sequence[str], rows: Sequence[tuple[str, Any]]) -> None:
    """One row per submission: its path, each test's score, the total. A submission that
    could not be graded has empty cells (the reason went to stderr and its report)."""
    w = csv.writer(out)
    w.writerow(["submission", *test_names, "total"])
    for submission, results in rows:
        if results is None or results.get("extra_data", {}).get("error"):
            w.writerow([submission, *([""] * len(test_names)), ""])
            continue
        by_name = {t.get("name"): t.get("score", 0) for t in results.get("tests", [])}
        cells = [_num(by_name.get(name, "")) for name in test_names]
        w.writerow([submission, *cells, _num(results.get("score", ""))])


def _num(x: object) -> str:
    return f"{x:g}" if isinstance(x, int | float) else str(x)


def report_text(title: str, submission: str, results: dict[str, Any]) -> str:
    """What a member of staff reads: the total, then each test with its score and output."""
    lines = [f"{title}: {_num(results.get('score', 0))}/{_num(results.get('max_score', 0))}"]
    lines.append(f"submission: {submission}")
    error = results.get("extra_data", {}).get("error")
    if error:
        lines.append(f"NOT GRADED: {error}")
    if results.get("output"):
        lines.append(results["output"])
    for i, t in enumerate(results.get("tests", []), 1):
        got, worth = t.get("score", 0), t.get("max_score", 0)
        # A bundle's results.json may leave status out: Gradescope derives it from the score.
        status = t.get("status") or ("passed" if got >= worth else "failed")
        seen = "" if t.get("visibility", "visible") == "visible" else f" [{t['visibility']}]"
        label = f"{t.get('number', '')} {t.get('name', '')}".strip() or f"test {i}"
        lines.append(f"\n{label}: {_num(got)}/{_num(worth)} {status}{seen}")
        output = t.get("output", "").splitlines()
        lines += [f"    {line}" for line in output[:REPORT_LINES]]
        if len(output) > REPORT_LINES:
            lines.append(f"    [... {len(output) - REPORT_LINES} more lines in results.json]")
    return "\n".join(lines) + "\n"


def out_names(submissions: Sequence[str]) -> list[str]:
    """A distinct, safe directory name per submission under --out."""
    names: list[str] = []
    for s in submissions:
        base = _UNSAFE.sub("_", Path(s).name.removesuffix(".zip")).strip("._") or "submission"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names
