"""The gradebook CSV, the text report, --out names and the result cache, without boxes."""

from __future__ import annotations

import io
import json
from pathlib import Path

from worker.grading import cache, gradebook
from worker.grading.results import Results, ScoredTest

GRADED = Results(
    tests=(
        ScoredTest("1", "a", 1.0, 2.0, "visible", "case 1: passed\ncase 2: wrong answer"),
        ScoredTest("2", "b", 3.0, 3.0, "hidden", ""),
    )
).to_dict()
FAILED = Results(error="a test box failed: x").to_dict()


def test_csv_has_a_row_per_submission_and_a_column_per_test() -> None:
    out = io.StringIO()
    gradebook.write_csv(out, ["a", "b"], [("s1", GRADED), ("s2", None), ("s3", FAILED)])
    assert out.getvalue().splitlines() == [
        "submission,a,b,total",
        "s1,1,3,4",
        "s2,,,",
        "s3,,,",
    ]


def test_report_text() -> None:
    text = gradebook.report_text("Lab", "subs/s1", GRADED)
    assert text.splitlines()[:2] == ["Lab: 4/5", "submission: subs/s1"]
    assert "1 a: 1/2 failed\n    case 1: passed\n    case 2: wrong answer" in text
    assert "2 b: 3/3 passed [hidden]" in text
    assert "NOT GRADED: a test box failed: x" in gradebook.report_text("Lab", "s", FAILED)


def test_report_of_a_bundles_sparse_results() -> None:
    """Gradescope lets a test leave out status and max_score."""
    sparse = {"score": 2, "tests": [{"name": "a", "score": 2}, {"score": 0, "max_score": 1}]}
    text = gradebook.report_text("Bundle", "s", sparse)
    assert "\na: 2/0 passed\n" in text and "\ntest 2: 0/1 failed" in text


def test_out_names_are_safe_and_distinct() -> None:
    names = gradebook.out_names(["a/alice", "b/alice", "c/bob.zip", "../..", "x/we ird"])
    assert names == ["alice", "alice-2", "bob", "submission", "we_ird"]


def test_cache_round_trip_and_damage(tmp_path: Path) -> None:
    store = cache.ResultCache(tmp_path / "c")
    k = cache.key("assignment", "submission", "host")
    assert store.get(k) is None
    store.put(k, GRADED)
    assert store.get(k) == json.loads(json.dumps(GRADED))
    (tmp_path / "c" / f"{k}.json").write_text('{"score": "lots"}')
    assert store.get(k) is None  # an invalid entry is a miss, never a score
    assert len({k, cache.key("assignment", "submission", "python3")}) == 2
