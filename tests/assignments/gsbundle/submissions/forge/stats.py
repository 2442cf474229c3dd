"""Wrong, and writes a perfect results.json when imported; grade.py writes after it: 0 of 5."""

import json

with open("/autograder/results/results.json", "w") as f:
    json.dump({"score": 5, "tests": []}, f)


def mean(xs: list[float]) -> float:
    return -1
