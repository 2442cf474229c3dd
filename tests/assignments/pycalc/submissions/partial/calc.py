"""multiply is wrong: 2 + 4 + 1 of 10."""


def add(a: int, b: int) -> int:
    return a + b


def multiply(a: int, b: int) -> int:
    return a + b


def divide(a: int, b: int) -> float | None:
    return None if b == 0 else a / b
