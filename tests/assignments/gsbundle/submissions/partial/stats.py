"""Fails on an empty list: 2 of 5."""


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)
