"""One reader of STOCKADE_* settings: one rule per type, every variable the code reads is
declared once, and the documented table is what `stockade config --markdown` prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.settings import FALSE, TRUE, Setting, setting
from service.config import Config
from worker.callbacks import CallbackSettings
from worker.jobs.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bSTOCKADE_[A-Z0-9_]*[A-Z0-9]\b")


def stockade(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STOCKADE_")}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def declared() -> dict[str, dict[str, str]]:
    out = stockade("config", "--json")
    assert out.returncode == 0, out.stderr
    return {row["name"]: row for row in json.loads(out.stdout)}


def test_the_documented_table_is_what_stockade_config_prints() -> None:
    doc = (ROOT / "docs" / "operating.md").read_text()
    table = doc.split("<!-- settings: stockade config --markdown -->\n")[1]
    table = table.split("<!-- end settings -->")[0]
    printed = stockade("config", "--markdown")
    assert printed.returncode == 0, printed.stderr
    assert table == printed.stdout, "run: .venv/bin/stockade config --markdown"


def test_every_variable_the_code_names_is_declared_and_read_only_by_the_reader() -> None:
    names = declared()
    named: set[str] = set()
    direct = []
    for package in ("sandbox", "worker", "service"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            named |= set(NAME.findall(text))
            for m in re.finditer(r"environ(?:\.get\(|\[)\s*[\"']STOCKADE_", text):
                direct.append(f"{path.relative_to(ROOT)}: {text[m.start() : m.end() + 30]}")
    assert not direct, f"read past sandbox/settings.py: {direct}"
    assert named <= set(names), sorted(named - set(names))


def test_one_true_false_rule_for_every_boolean_setting() -> None:
    booleans = [n for n, row in declared().items() if row["default"] in ("true", "false")]
    assert {"STOCKADE_ALLOW_NETWORK", "STOCKADE_SELF_TEST"} <= set(booleans)
    for name in booleans:
        s = Setting(name, False, "")
        for word in (*TRUE, *(w.upper() for w in TRUE), " On "):
            assert s.read({name: word}) is True, (name, word)
        for word in (*FALSE, "FALSE", " Off "):
            assert s.read({name: word}) is False, (name, word)
        with pytest.raises(ValueError, match=f"{name}: must be true or false"):
            s.read({name: "maybe"})


def test_the_api_and_the_worker_read_one_variable_alike() -> None:
    """Before: STOCKADE_CALLBACK_ALLOW_PRIVATE=true passed the API's check and was refused by
    the worker (which took only "1"); STOCKADE_SELF_TEST=false still ran the self-tests."""
    env = {"STOCKADE_CALLBACK_ALLOW_PRIVATE": "true", "STOCKADE_SELF_TEST": "false"}
    assert Config.from_env(env).callback_allow_private is True
    assert CallbackSettings.from_env(env).allow_private is True
    assert WorkerSettings.from_env(env).self_test is False
    env = {"STOCKADE_REDIS_URL": "", "STOCKADE_MIN_TIER": "gvisor"}
    assert Config.from_env(env).redis_url == WorkerSettings.from_env(env).redis_url
    assert Config.from_env(env).min_tier == WorkerSettings.from_env(env).min_tier == "gvisor"
    with pytest.raises(ValueError, match="STOCKADE_MIN_TIER: must be one of"):
        WorkerSettings.from_env({"STOCKADE_MIN_TIER": "vm"})
    with pytest.raises(ValueError, match="STOCKADE_SLOTS: must be a whole number"):
        from sandbox.config import HostConfig

        HostConfig.from_env({"STOCKADE_SLOTS": "many"})


def test_a_variable_has_one_default() -> None:
    setting("STOCKADE_TEST_ONLY_ONCE", 1, "a test's")
    assert setting("STOCKADE_TEST_ONLY_ONCE", 1, "said again").doc == "a test's"
    with pytest.raises(ValueError, match="declared twice, differently"):
        setting("STOCKADE_TEST_ONLY_ONCE", 2, "a test's")


def test_stockade_config_shows_values_and_hides_secrets() -> None:
    env = {"STOCKADE_SLOTS": "8", "STOCKADE_AUTH_TOKENS": "hunter2", "STOCKADE_QUEUE": ""}
    out = stockade("config", "--json", env=env)
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["STOCKADE_SLOTS"]["value"] == "8"
    assert rows["STOCKADE_AUTH_TOKENS"]["value"] == "(set)"
    assert "hunter2" not in out.stdout
    assert rows["STOCKADE_QUEUE"]["value"] == "(default)"
    bad = stockade("config", env={"STOCKADE_SLOTS": "many"})
    assert bad.returncode == 1 and "INVALID: STOCKADE_SLOTS: must be a whole number" in bad.stdout
