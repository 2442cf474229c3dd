"""go tests' pure parts: the reporter, the -test.run pattern, and what counts as a pass."""

from __future__ import annotations

import hashlib
import hmac

from sandbox.result import BoxResult, Status
from worker.grading import gotest


def rep() -> gotest.Reporter:
    r = gotest.reporter({"wc.go": b"// x\npackage wc\n", "wc_test.go": b"package wc_test\n"})
    assert isinstance(r, gotest.Reporter)
    return r


def test_reporter_is_random_and_in_the_package() -> None:
    a, b = rep(), rep()
    assert a.name != b.name and a.key != b.key and a.file.path != b.file.path
    assert a.file.path.startswith("zz_") and a.file.path.endswith("_test.go")
    text = a.file.content.decode()
    assert text.startswith("package wc\n") and f"func {a.name}(t *testing.T)" in text
    assert gotest.reporter({"x_test.go": b"package x_test\n"}) == (
        "no Go package: no .go file with a package clause"
    )


def test_run_pattern_selects_the_test_and_the_reporter() -> None:
    argv = gotest.run_argv("TestTable/tabs", "TestZZStockadeab")
    assert argv[1:3] == ("-test.run", "^(TestTable|TestZZStockadeab)$/^tabs$")
    assert "-test.paniconexit0" in argv


def _box(stdout: str, status: Status = Status.OK) -> BoxResult:
    return BoxResult(status, 0, None, 0.1, 0.1, 0, stdout.encode(), b"", "Exited normally")


def test_a_pass_needs_the_answer_the_exit_and_the_pass_line() -> None:
    r = rep()
    answer = hmac.new(r.key.encode(), b"c1", hashlib.sha256).hexdigest()
    good = f"=== RUN   TestA\n--- PASS: TestA (0.00s)\n{gotest.MARK}{answer}\nPASS\n"
    assert gotest.judge(_box(good), "TestA", r, "c1")[0]
    assert "PASS" in gotest.judge(_box(good), "TestA", r, "c1")[2]
    assert not gotest.judge(_box(good), "TestA", r, "c2")[0]  # another box's challenge
    assert not gotest.judge(_box(good), "TestB", r, "c1")[0]
    assert not gotest.judge(_box(good, Status.RE), "TestA", r, "c1")[0]
    forged = "--- PASS: TestA (0.00s)\nSTOCKADE-GRADER-REPORT 00\nPASS\n"
    ok, why, _ = gotest.judge(_box(forged), "TestA", r, "c1")
    assert not ok and "did not run to the end" in why
    failed = good.replace("PASS\n", "--- FAIL: TestA/x (0.00s)\n", 1)
    assert not gotest.judge(_box(failed), "TestA", r, "c1")[0]
