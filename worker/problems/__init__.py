"""ICPC/Kattis/DOMjudge problem packages (legacy and 2023-07): read, judge, verify."""

from worker.jobs.packages.format import ProblemError, parse_simple_yaml
from worker.jobs.packages.package import Package, load_package

__all__ = ["Package", "ProblemError", "load_package", "parse_simple_yaml"]
