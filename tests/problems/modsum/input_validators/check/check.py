"""Input validator: n, then n integers on one line; exit 42 when valid."""

import sys

from rules import valid

lines = sys.stdin.read().split("\n")
try:
    n = int(lines[0])
    numbers = [int(x) for x in lines[1].split(" ")]
except (ValueError, IndexError):
    sys.exit(43)
sys.exit(42 if valid(numbers, n) and lines[2:] == [""] else 43)
