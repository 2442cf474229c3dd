"""divide kills its own process with SIGSEGV: 2 + 3 + 1 of 10."""

import os
import signal


def add(a: int, b: int) -> int:
    return a + b


def multiply(a: int, b: int) -> int:
    return a * b


def divide(a: int, b: int) -> float | None:
    os.kill(os.getpid(), signal.SIGSEGV)
    return None
