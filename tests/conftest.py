"""Shared fixtures: root and kernel checks, and one launcher for the privileged tier."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: namespaces, cgroups and mounts")
    for item in items:
        if "privileged" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def launcher() -> Iterator[object]:
    from sandbox.launcher import Launcher

    with Launcher() as lau:
        yield lau


# Assignments' own test files and students' submissions are graded in boxes by
# tests/privileged/test_grading.py, never collected by this suite.
collect_ignore = ["assignments"]
