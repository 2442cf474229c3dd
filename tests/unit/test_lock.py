"""The lock files: they cover pyproject.toml's ranges, pin each package once with its hashes,
agree with each other, and are what this venv was installed from."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: Marker | None
    hashes: tuple[str, ...]

    def applies_here(self) -> bool:
        return self.marker is None or self.marker.evaluate()


def read_lock(path: Path) -> dict[str, Pin]:
    """{canonical name: Pin}: one requirement per logical line (continuations joined),
    comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins: dict[str, Pin] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split(" --hash=")
        req = Requirement(words[0])
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{path.name}: {line[:80]}"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{path.name} pins {name} twice"
        pins[name] = Pin(name, specs[0].version, req.marker, tuple(w.strip() for w in words[1:]))
    return pins


def pyproject() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {
        "runtime": data["project"]["dependencies"],
        "dev": data["project"]["optional-dependencies"]["dev"],
        "build": data["build-system"]["requires"],
    }


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=lambda p: p.name)
def test_every_pin_is_exact_and_hashed(lock: Path) -> None:
    pins = read_lock(lock)
    assert len(pins) > 10
    for pin in pins.values():
        assert pin.hashes, f"{lock.name}: {pin.name} has no hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes), pin


@pytest.mark.parametrize(
    ("lock", "groups"),
    [(RUNTIME_LOCK, ("runtime", "build")), (DEV_LOCK, ("runtime", "dev", "build"))],
    ids=["requirements.lock", "requirements-dev.lock"],
)
def test_the_lock_satisfies_every_range_in_pyproject(lock: Path, groups: tuple[str, ...]) -> None:
    """A range changed in pyproject.toml without `make lock` fails here, not on a fresh
    machine that resolves it differently."""
    pins = read_lock(lock)
    stale = []
    for group in groups:
        for text in pyproject()[group]:
            req = Requirement(text)
            pin = pins.get(canonicalize_name(req.name))
            if pin is None or not req.specifier.contains(pin.version, prereleases=True):
                stale.append(f"{group}: {text} (locked: {pin.version if pin else 'absent'})")
    assert not stale, f"run `make lock`: {lock.name} does not satisfy {stale}"


def test_the_runtime_lock_is_the_dev_lock_less_the_dev_tools() -> None:
    """The Docker image runs the versions that make test ran."""
    runtime, dev = read_lock(RUNTIME_LOCK), read_lock(DEV_LOCK)
    assert set(runtime) <= set(dev), set(runtime) - set(dev)
    differ = {n: (p.version, dev[n].version) for n, p in runtime.items() if dev[n] != p}
    assert not differ, differ


def test_this_venv_holds_exactly_the_dev_lock() -> None:
    """`make` installed from the lock: every pin that applies to this Python is installed at
    its version, and nothing else is, but the project itself."""
    pins = {n: p for n, p in read_lock(DEV_LOCK).items() if p.applies_here()}
    installed = {
        canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
    }
    installed.pop("stockade", None)
    wrong = {
        n: (p.version, installed.get(n)) for n, p in pins.items() if installed.get(n) != p.version
    }
    assert not wrong, f"(locked, installed): {wrong}"
    extra = set(installed) - set(pins)
    assert not extra, f"installed but not locked: {sorted(extra)}"
