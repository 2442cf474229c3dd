"""A Gradescope-style grader: imports the submission, writes results.json itself."""

import json
import traceback

RESULTS = "/autograder/results/results.json"
tests = []


def check(name: str, points: float, visibility: str, body: str) -> None:
    try:
        exec(body, {})
        tests.append({"name": name, "score": points, "max_score": points, "visibility": visibility})
    except Exception:
        out = traceback.format_exc(limit=1)
        tests.append(
            {"name": name, "score": 0, "max_score": points, "visibility": visibility, "output": out}
        )


check("mean of 1 2 3", 2, "visible", "from stats import mean\nassert mean([1, 2, 3]) == 2")
check("mean of nothing", 3, "hidden", "from stats import mean\nassert mean([]) == 0")
with open(RESULTS, "w") as f:
    json.dump({"tests": tests, "visibility": "visible"}, f)
