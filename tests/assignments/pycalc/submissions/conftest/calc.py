"""Wrong everywhere; its conftest.py would turn every failure into a pass: 0 of 10."""


def add(a: int, b: int) -> int:
    return 0


def multiply(a: int, b: int) -> int:
    return 0


def divide(a: int, b: int) -> float | None:
    return 0
