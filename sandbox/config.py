"""HostConfig: host-wide settings, read once from the environment (STOCKADE_*)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"


@dataclass(frozen=True)
class HostConfig:
    state_dir: str = "/var/lib/stockade"
    run_dir: str = "/run/stockade"
    first_uid: int = 60000
    slots: int = 64
    profiles_dir: str = str(PROFILES_DIR)
    warm_inits: int = 2
    box_path: str = "/usr/local/bin:/usr/bin:/bin"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> HostConfig:
        env = os.environ if environ is None else environ
        base = cls()
        return cls(
            state_dir=env.get("STOCKADE_STATE_DIR", base.state_dir),
            run_dir=env.get("STOCKADE_RUN_DIR", base.run_dir),
            first_uid=int(env.get("STOCKADE_FIRST_UID", base.first_uid)),
            slots=int(env.get("STOCKADE_SLOTS", base.slots)),
            profiles_dir=env.get("STOCKADE_PROFILES_DIR", base.profiles_dir),
            warm_inits=int(env.get("STOCKADE_WARM_INITS", base.warm_inits)),
        )
