"""SandboxError: a failure of the box itself, naming the step and the syscall."""

from __future__ import annotations

import errno
import os


class SandboxError(Exception):
    """The sandbox (not the program) failed. `step` and `syscall` say where."""

    def __init__(self, step: str, syscall: str, err: int = 0, detail: str = "") -> None:
        self.step = step
        self.syscall = syscall
        self.errno = err
        self.detail = detail
        super().__init__(self.describe())

    def describe(self) -> str:
        name = errno.errorcode.get(self.errno, str(self.errno)) if self.errno else ""
        text = f"{self.step}: {self.syscall}"
        if name:
            text += f": {name} ({os.strerror(self.errno)})"
        if self.detail:
            text += f": {self.detail}"
        return text


class SpecError(ValueError):
    """The spec breaks a rule; each message names the field and the rule."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))
