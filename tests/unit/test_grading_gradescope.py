"""A bundle's results.json read back: missing, not JSON, off the format, or Gradescope's own."""

from __future__ import annotations

import json

from sandbox.result import BoxResult, Status
from worker.grading.gradescope import RESULTS, read_results, setup_does_something
from worker.grading.results import Results


def box(files: dict[str, bytes], status: Status = Status.OK) -> BoxResult:
    return BoxResult(status, 0, None, 0.1, 0.1, 0, b"out\n", b"err\n", "Exited normally", files)


def error(r: BoxResult) -> str:
    got = read_results(r)
    assert isinstance(got, Results) and got.error
    return got.error


def test_missing_malformed_and_invalid_are_errors_that_say_what() -> None:
    assert "left no /autograder/results/results.json" in error(box({}))
    assert "results.json is not JSON" in error(box({RESULTS: b"{score: 1"}))
    bad = json.dumps({"tests": [{"name": "a", "status": "ok", "score": 1}]}).encode()
    assert "tests[0].status: must be passed or failed" in error(box({RESULTS: bad}))
    assert "box failed" in error(box({}, Status.XX))


def test_gradescope_defaults_are_filled_in() -> None:
    data = {"tests": [{"name": "a", "score": 1, "max_score": 2}, {"score": 3}]}
    got = read_results(box({RESULTS: json.dumps(data).encode()}))
    assert isinstance(got, dict)
    assert (got["score"], got["max_score"]) == (4, 2)
    given = read_results(box({RESULTS: b'{"score": 7, "tests": []}'}))
    assert isinstance(given, dict) and given["score"] == 7


def test_setup_sh_with_only_comments_does_nothing() -> None:
    assert not setup_does_something({"setup.sh": b"#!/bin/bash\n# nothing\n\n"})
    assert not setup_does_something({})
    assert setup_does_something({"setup.sh": b"#!/bin/bash\napt-get install -y python3\n"})
