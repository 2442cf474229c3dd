"""The output limit: kept up to the cap, OLE when passed, and OLE too when a program killed for
memory had already filled the cap (a runtime buffering a flood until the OOM killer came)."""

from __future__ import annotations

import pytest

from sandbox.launcher import Launcher
from sandbox.result import Status
from sandbox.spec import KIB, MIB, BoxSpec, Limits

pytestmark = pytest.mark.privileged

FILL_THEN_BLOW = (
    "import sys\n"
    "sys.stdout.write('x' * 65536); sys.stdout.flush()\n"
    "hog = []\n"
    "while True: hog.append(bytearray(16 << 20))\n"
)


def test_output_at_the_cap_then_oom_is_ole(launcher: Launcher) -> None:
    spec = BoxSpec(
        argv=("/usr/bin/python3", "-c", FILL_THEN_BLOW),
        limits=Limits(output_bytes=64 * KIB, memory_bytes=64 * MIB, wall_time_s=10),
    )
    r = launcher.run(spec)
    assert r.status is Status.OLE, r.message
    assert len(r.stdout) == 64 * KIB


def test_output_exactly_at_the_cap_and_a_clean_exit_is_ok(launcher: Launcher) -> None:
    code = "import sys; sys.stdout.write('x' * 65536)"
    spec = BoxSpec(argv=("/usr/bin/python3", "-c", code), limits=Limits(output_bytes=64 * KIB))
    r = launcher.run(spec)
    assert (r.status, len(r.stdout)) == (Status.OK, 64 * KIB)


def test_memory_bomb_without_output_is_mle(launcher: Launcher) -> None:
    code = "hog = []\nwhile True: hog.append(bytearray(16 << 20))"
    spec = BoxSpec(argv=("/usr/bin/python3", "-c", code), limits=Limits(memory_bytes=64 * MIB))
    assert launcher.run(spec).status is Status.MLE
