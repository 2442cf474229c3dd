"""A killed launcher's box cgroups are swept by the next launcher; a live one's never are."""

from __future__ import annotations

import os
import subprocess

import pytest

from sandbox.cgroups import probe

pytestmark = pytest.mark.privileged


def _dead_pid() -> int:
    p = subprocess.Popen(["/bin/true"])
    p.wait()
    return p.pid  # reaped: gone, and not reused this soon on a 4M pid space


def test_sweep_removes_only_dead_launchers_cgroups() -> None:
    # The manager makes its stockade/ nodes itself, so this runs on a fresh host too (it
    # once skipped there, deciding at import time from a node only a launcher had made).
    manager = probe()
    parents = manager.parents()
    assert parents and all(os.path.isdir(p) for p in parents), parents
    dead, live = f"{_dead_pid()}-1", f"{os.getpid()}-999999"
    made = [os.path.join(p, n) for p in parents for n in (dead, live)]
    for path in made:
        os.mkdir(path)
    try:
        removed = manager.sweep_stale()
        assert sorted(removed) == sorted(p for p in made if p.endswith("/" + dead))
        assert all(os.path.isdir(p) for p in made if p.endswith("/" + live))
    finally:
        for path in made:
            if os.path.isdir(path):
                os.rmdir(path)
        manager.close()
