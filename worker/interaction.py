"""A program and its interactor in two boxes joined by two pipes, run at once."""

from __future__ import annotations

import os
import threading
import time

from sandbox.launcher import Launcher
from sandbox.result import BoxResult
from sandbox.spec import BoxSpec
from sandbox.stdio import Stdio


def run_joined(
    launcher: Launcher, program: BoxSpec, other: BoxSpec
) -> tuple[BoxResult, BoxResult, bool] | None:
    """(program's result, the other's, whether the other ended first), or None when a box
    of the two failed to run. Each side's copies of our pipe ends are closed as soon as that
    box's run returns, so the other side sees EOF or EPIPE (pipe(7)) and never waits on an
    end that only we still hold."""
    o2p_r, o2p_w = os.pipe()
    p2o_r, p2o_w = os.pipe()
    sides = {"program": (program, Stdio(o2p_r, p2o_w)), "other": (other, Stdio(p2o_r, o2p_w))}
    results: dict[str, BoxResult] = {}
    ended: dict[str, float] = {}

    def run(side: str) -> None:
        spec, stdio = sides[side]
        try:
            results[side] = launcher.run(spec, stdio)
        finally:
            ended[side] = time.monotonic()
            os.close(stdio.stdin_fd)
            os.close(stdio.stdout_fd)

    threads = [threading.Thread(target=run, args=(s,)) for s in sides]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(results) < 2:
        return None
    return results["program"], results["other"], ended["other"] < ended["program"]
