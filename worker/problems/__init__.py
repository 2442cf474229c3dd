"""ICPC/Kattis/DOMjudge problem packages (legacy and 2023-07): read, judge, verify."""

from worker.problems.format import ProblemError, parse_simple_yaml
from worker.problems.package import Package, load_package

__all__ = ["Package", "ProblemError", "load_package", "parse_simple_yaml"]
