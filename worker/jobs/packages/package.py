"""A whole package read once: problem.yaml, limits, the test tree, its validators' folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from worker.jobs.packages.format import (
    LEGACY,
    Case,
    Group,
    Meta,
    ProblemError,
    read_meta,
    read_tests,
)
from worker.jobs.packages.limits import PackageLimits, read_limits

# Where each version keeps its programs (2023-07 renamed both; the old names are still read).
OUTPUT_VALIDATOR_DIRS = {
    LEGACY: ("output_validators",),
    "2023-07": ("output_validator", "output_validators"),
}
INPUT_VALIDATOR_DIRS = ("input_validators", "input_format_validators")


@dataclass(frozen=True)
class Package:
    directory: Path
    meta: Meta
    limits: PackageLimits
    tests: Group
    output_validator: Path | None
    input_validators: tuple[Path, ...]

    @property
    def cases(self) -> list[Case]:
        return self.tests.cases()


def load_package(directory: Path, max_memory_mib: int) -> Package:
    """The package, or a ProblemError saying what in it is wrong."""
    try:
        meta = read_meta(directory)
        return Package(
            directory,
            meta,
            read_limits(directory, meta, max_memory_mib),
            read_tests(directory / "data"),
            _output_validator(directory, meta),
            _input_validators(directory),
        )
    except ProblemError:
        raise
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as e:
        raise ProblemError(f"{directory.name}: malformed package: {type(e).__name__}: {e}") from e
    except Exception as e:  # PyYAML's YAMLError is not a ValueError
        if type(e).__module__.startswith("yaml"):
            raise ProblemError(f"{directory.name}: YAML: {e}") from e
        raise


def _output_validator(directory: Path, meta: Meta) -> Path | None:
    """2023-07's output_validator/ is the program itself; legacy output_validators/ holds one
    program (a directory or a file)."""
    if not meta.custom_output:
        return None
    for name in OUTPUT_VALIDATOR_DIRS[meta.version]:
        folder = directory / name
        if not folder.is_dir():
            continue
        if name == "output_validator":
            return folder
        programs = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        if len(programs) != 1:
            raise ProblemError(f"{folder}: expected one validator, found {len(programs)}")
        return programs[0]
    raise ProblemError(f"{directory.name}: a custom or interactive problem needs its validator")


def _input_validators(directory: Path) -> tuple[Path, ...]:
    out: list[Path] = []
    for name in INPUT_VALIDATOR_DIRS:
        folder = directory / name
        if folder.is_dir():
            out.extend(sorted(p for p in folder.iterdir() if not p.name.startswith(".")))
    return tuple(out)
