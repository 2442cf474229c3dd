"""enable_network: the worker reads the operator's STOCKADE_ALLOW_NETWORK as the API does, and
the judge networks the submission's run boxes only, only when asked and allowed."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import pytest

from sandbox.settings import FALSE, TRUE
from sandbox.spec import BoxSpec, validate
from service.config import Config
from tests.unit.test_judge_tiers import Recorder
from worker.jobs.languages import load_languages
from worker.jobs.model import CheckerSpec, Program, Submission, TestCase, Verdict
from worker.jobs.settings import WorkerSettings
from worker.judge import NETWORK_REFUSED, Judge

if TYPE_CHECKING:
    from sandbox.launcher import Launcher

PYTHON = 71
CPP = 54

SPELLINGS = [*TRUE, *FALSE, "", "TRUE", " Yes ", "Off"]


@pytest.mark.parametrize("text", SPELLINGS)
def test_worker_and_api_read_allow_network_alike(text: str) -> None:
    env = {"STOCKADE_ALLOW_NETWORK": text}
    api = Config.from_env(env).allow_network
    assert WorkerSettings.from_env(env).allow_network is api
    assert api is (text.strip().lower() in TRUE)


def test_network_is_off_unless_the_operator_says_so() -> None:
    assert WorkerSettings.from_env({}).allow_network is False
    assert Config.from_env({}).allow_network is False


@pytest.mark.parametrize("text", ["maybe", "2", "enabled"])
def test_a_misspelt_setting_stops_both_naming_the_variable(text: str) -> None:
    env = {"STOCKADE_ALLOW_NETWORK": text}
    for settings in (Config, WorkerSettings):
        with pytest.raises(ValueError, match=r"STOCKADE_ALLOW_NETWORK: must be true or false"):
            settings.from_env(env)


# --- Which boxes the judge networks (a recorder stands in for the launcher) --------------------


def _judge(allow: bool, minimum: str = "") -> tuple[Judge, Recorder]:
    rec = Recorder()
    launcher = cast("Launcher", rec)
    return Judge(launcher, load_languages(), min_tier=minimum, allow_network=allow), rec


def _source(spec: BoxSpec) -> str:
    """Which program a (Python) box runs: the script it was handed."""
    return next(f.content.decode() for f in spec.files if f.path == "script.py")


@pytest.mark.parametrize("asked", [True, False])
def test_the_run_box_has_the_network_as_asked_the_compile_box_never(asked: bool) -> None:
    judge, rec = _judge(allow=True)
    sub = Submission(source_code="int main(){}", language_id=CPP, enable_network=asked)
    assert judge.judge(sub).verdict is Verdict.AC
    compile_box, run_box = rec.specs
    assert compile_box.collect and not compile_box.network  # as Judge0: --share-net on run only
    assert run_box.network is asked
    assert run_box.tier == "container" and validate(run_box) == []


def test_every_run_of_every_case_is_networked() -> None:
    judge, rec = _judge(allow=True)
    cases = tuple(TestCase(str(i), None) for i in range(3))
    sub = Submission("print(1)", PYTHON, enable_network=True, test_cases=cases, number_of_runs=2)
    assert judge.judge(sub).verdict is Verdict.AC
    assert len(rec.specs) == 6 and all(s.network for s in rec.specs)


def test_a_custom_checker_never_gets_the_network() -> None:
    judge, rec = _judge(allow=True)
    checker = CheckerSpec(kind="custom", program=Program("# checker", PYTHON))
    sub = Submission(
        "# program", PYTHON, expected_output="1\n", enable_network=True, checker=checker
    )
    assert judge.judge(sub).verdict is Verdict.AC
    assert [(_source(s), s.network) for s in rec.specs] == [
        ("# program", True),
        ("# checker", False),
    ]


def test_an_interactor_never_gets_the_network() -> None:
    judge, rec = _judge(allow=True)
    sub = Submission(
        "# program", PYTHON, enable_network=True, interactor=Program("# interactor", PYTHON)
    )
    assert judge.judge(sub).verdict is Verdict.AC
    boxes = sorted((_source(s), s.network) for s in rec.specs)  # the two sides run at once
    assert boxes == [("# interactor", False), ("# program", True)]


def test_a_worker_whose_operator_refuses_runs_nothing() -> None:
    judge, rec = _judge(allow=False)
    result = judge.judge(Submission("print(1)", PYTHON, enable_network=True))
    assert result.verdict is Verdict.IE and result.message == NETWORK_REFUSED
    assert "enable_network" in result.message and rec.specs == []
    # Not asking is what every submission does: unaffected, and never networked.
    assert judge.judge(Submission("print(1)", PYTHON)).verdict is Verdict.AC
    assert [s.network for s in rec.specs] == [False]


def test_a_tier_without_a_network_refuses_before_any_run() -> None:
    """The worker's minimum tier may be stronger than the API knew: gVisor has no network."""
    judge, rec = _judge(allow=True, minimum="gvisor")
    result = judge.judge(Submission("int main(){}", CPP, enable_network=True))
    assert result.verdict is Verdict.IE
    assert result.message.startswith("enable_network: only the container tier has a network")
    assert [s.collect != () for s in rec.specs] == [True]  # the compile box only
