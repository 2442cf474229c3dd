"""What a worker reads from the queue is held to the API's rules: records written straight
into Redis (past the API) end as Internal Error naming the rule, and no box is run."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from sandbox.result import BoxResult
from sandbox.spec import BoxSpec
from sandbox.stdio import Stdio
from tests.unit.redis_server import redis_url
from worker.jobs.languages import load_languages
from worker.jobs.model import Submission
from worker.jobs.store import Store
from worker.tasks import run_job
from worker.timing import TimedJudge

__all__ = ["redis_url"]

PREFIX = "t:"
GOOD = Submission("print(1)", 71).to_dict()


class NoBox:
    """Stands in for the launcher: these jobs must be refused before any box is asked for."""

    def __init__(self) -> None:
        self.specs: list[BoxSpec] = []

    def run(self, spec: BoxSpec, stdio: Stdio | None = None) -> BoxResult:
        self.specs.append(spec)
        raise AssertionError(f"a box was run: {spec.argv}")


def plant(store: Store, submission: str) -> str:
    """A record as Store.create writes it, with `submission` as its raw JSON."""
    token = str(uuid.uuid4())
    fields = {
        "submission": submission,
        "status_id": 1,
        "message": "",
        "created_at": repr(time.time()),
        "attempts": 0,
        "callback_url": "",
        "meta": "{}",
        "language_id": 71,
    }
    store.redis.hset(f"{PREFIX}sub:{token}", mapping=fields)  # type: ignore[arg-type]
    store.redis.sadd(f"{PREFIX}queued", token)
    return token


def with_(**changes: object) -> str:
    return json.dumps({**GOOD, **changes})


@pytest.mark.parametrize(
    ("submission", "rule"),
    [
        ("{not json", "submission: not valid JSON"),
        ('["print(1)", 71]', "submission: must be a JSON object"),
        ("[" * 100_000, "submission: not valid JSON"),
        (with_(cpu_time_limit=999), "cpu_time_limit: must be between 0 and 15"),
        (with_(memory_limit="lots"), "memory_limit: must be a number"),
        (with_(test_cases="abc"), "test_cases: must be a list of objects"),
        (with_(test_cases=[{"input": 1}]), "test_cases[0].input: wrong type int"),
        (with_(tier="kernel"), "tier: must be one of container, gvisor, microvm"),
        (with_(compiler_options="-O2; rm -rf /"), "compiler_options: at most 512 characters"),
        (with_(command_line_arguments="x" * 600), "command_line_arguments: at most 512"),
        (with_(bogus=1), "bogus: unknown field"),
        (
            with_(interactor={"source_code": "x", "language_id": 71, "args": [1, {}]}),
            "interactor.args: must be a list of strings",
        ),
        (
            with_(checker={"kind": "custom", "program": None}),
            "checker.program: a custom checker needs a program",
        ),
        (with_(checker={"kind": "magic"}), "checker.kind: must be one of"),
    ],
)
def test_a_record_that_breaks_the_rules_is_internal_error(
    redis_url: str, submission: str, rule: str
) -> None:
    store = Store(redis_url, PREFIX)
    token = plant(store, submission)
    launcher = NoBox()
    judge = TimedJudge(launcher, load_languages())  # type: ignore[arg-type]
    assert run_job(token, store, judge.judge_timed, 3) == 13
    rec = store.get(token)
    assert rec is not None and rec.status_id == 13
    assert "nothing was run" in rec.message and rule in rec.message, rec.message
    assert launcher.specs == []


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"language_id": 999}, "language_id: no language 999 on this worker"),
        (
            {"checker": {"kind": "custom", "program": {"source_code": "x", "language_id": 998}}},
            "checker.program.language_id: no language 998 on this worker",
        ),
        (
            {"interactor": {"source_code": "x", "language_id": 997}},
            "interactor.language_id: no language 997 on this worker",
        ),
    ],
)
def test_an_unknown_language_is_internal_error_before_any_box(
    redis_url: str, changes: dict[str, object], rule: str
) -> None:
    """A checker in a language this worker does not serve used to cost the program's
    compile first; now nothing runs."""
    store = Store(redis_url, PREFIX)
    token = plant(store, with_(**changes))
    launcher = NoBox()
    langs = load_languages()
    judge = TimedJudge(launcher, langs)  # type: ignore[arg-type]
    assert run_job(token, store, judge.judge_timed, 3) == 13
    rec = store.get(token)
    assert rec is not None and rule in rec.message, rec.message
    assert launcher.specs == []


def test_a_record_that_keeps_the_rules_is_judged(redis_url: str) -> None:
    """The control: the same planting, a valid submission, reaches the launcher."""
    store = Store(redis_url, PREFIX)
    token = plant(store, json.dumps(GOOD))
    rec = store.get(token)
    assert rec is not None and rec.invalid == "" and rec.submission == Submission("print(1)", 71)
    launcher = NoBox()
    judge = TimedJudge(launcher, load_languages())  # type: ignore[arg-type]
    assert run_job(token, store, judge.judge_timed, 3) == 13  # NoBox's failure: IE
    assert len(launcher.specs) == 1
