"""The budget of one submission that the API and the workers both check: how many boxes it runs."""

from __future__ import annotations

from worker.jobs.model import Submission


def runs_refused(sub: Submission, cap: int) -> str | None:
    """'field: rule' when the submission's cases x number_of_runs is past `cap` (the operator's
    STOCKADE_MAX_RUNS_PER_SUBMISSION), else None."""
    cases, runs = len(sub.cases()), max(1, sub.number_of_runs)
    if cases * runs <= cap:
        return None
    field = "test_cases" if sub.test_cases else "number_of_runs"
    return (
        f"{field}: {cases} case(s) x {runs} run(s) = {cases * runs} boxes, more than "
        f"STOCKADE_MAX_RUNS_PER_SUBMISSION={cap}"
    )
