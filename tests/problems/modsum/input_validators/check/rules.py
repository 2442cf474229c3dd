"""The input's bounds."""

MAX_N = 100
MAX_ABS = 10**9


def valid(numbers: list[int], n: int) -> bool:
    return 1 <= n <= MAX_N and len(numbers) == n and all(abs(x) <= MAX_ABS for x in numbers)
