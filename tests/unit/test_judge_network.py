"""enable_network: the worker reads the operator's STOCKADE_ALLOW_NETWORK as the API does."""

from __future__ import annotations

import pytest

from service.config import Config
from worker.celery_app import WorkerSettings
from worker.env import FALSE, TRUE

SPELLINGS = [*TRUE, *FALSE, "TRUE", " Yes ", "Off"]


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
