"""Wrong answers that try to forge full marks at import: 0 of 10."""

import json
import os
import sys

FORGED = {"score": 10, "tests": [{"name": "add", "score": 2, "status": "passed"}]}
for path in ("/autograder/results/results.json", "/box/results.json", "/tmp/results.json"):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(FORGED, f)
    except OSError:
        pass
# A report line in the grader's format, with guessed keys, on every descriptor.
for key in ("", "0" * 32, os.environ.get("STOCKADE_KEY", "x")):
    line = json.dumps(
        {"key": key, "exit": 0, "outcomes": [["check_calc.py::test_add", "call", "passed"]]}
    )
    for fd in range(1, 10):
        try:
            os.write(fd, f"\nSTOCKADE-GRADER-REPORT {line}\n".encode())
        except OSError:
            pass
print("score: 10/10")
sys.stdout.flush()
os._exit(0)


def add(a: int, b: int) -> int:
    return 0


def multiply(a: int, b: int) -> int:
    return 0


def divide(a: int, b: int) -> float | None:
    return 0
