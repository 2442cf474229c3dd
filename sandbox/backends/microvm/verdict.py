"""The verdict of a microVM box: the agent's report turned into a BoxResult."""

from __future__ import annotations

import dataclasses

from sandbox.backends.microvm import protocol
from sandbox.result import BoxResult, Observed, failed, judged
from sandbox.spec import BoxSpec


def box_result(spec: BoxSpec, out: protocol.Outcome, host_wall_s: float, runtime: str) -> BoxResult:
    """The container tier's classification of what the agent saw, or of the host's wall kill
    when the agent never reported (the outcome is not done)."""
    if out.failure:
        return failed(f"guest agent: {out.failure}", host_wall_s, runtime)
    host_killed = not out.done
    obs = Observed(
        wait_status=out.wait_status,
        cpu_time_s=out.cpu_time_s,
        wall_time_s=out.wall_time_s if out.done else host_wall_s,
        oom_killed=out.oom_killed,
        output_exceeded=out.output_exceeded,
        wall_exceeded=out.wall_exceeded or host_killed,
        cpu_limit_s=spec.limits.cpu_time_s,
        wall_limit_s=spec.limits.wall_time_s,
        exec_error=out.exec_error,
    )
    r = judged(
        obs, out.memory_peak, bytes(out.stdout), bytes(out.stderr), out.files, out.refused, runtime
    )
    if host_killed:
        return dataclasses.replace(r, message=r.message + " (the host stopped the VM)")
    return r
