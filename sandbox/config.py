"""HostConfig: host-wide settings, read once from the environment (STOCKADE_*)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sandbox.settings import setting

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"

STATE_DIR = setting(
    "STOCKADE_STATE_DIR",
    "/var/lib/stockade",
    "the layer store, the images, the microVM tier's kernel and disks",
)
RUN_DIR = setting(
    "STOCKADE_RUN_DIR", "/run/stockade", "the box slots' locks, templates and init layers"
)
FIRST_UID = setting(
    "STOCKADE_FIRST_UID",
    60000,
    "the first box slot's uid and gid; each slot has its own",
    minimum=1,
)
SLOTS = setting("STOCKADE_SLOTS", 64, "box slots, so boxes at once, per host", minimum=1)
PROFILES = setting(
    "STOCKADE_PROFILES_DIR",
    "",
    "seccomp profiles, languages and image recipes; empty: the profiles/ shipped with the code",
)
WARM_INITS = setting(
    "STOCKADE_WARM_INITS", 2, "container boxes kept prepared ahead of demand", minimum=0
)


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
    def from_env(cls, env: Mapping[str, str] | None = None) -> HostConfig:
        return cls(
            state_dir=STATE_DIR.as_str(env),
            run_dir=RUN_DIR.as_str(env),
            first_uid=FIRST_UID.as_int(env),
            slots=SLOTS.as_int(env),
            profiles_dir=PROFILES.as_str(env) or str(PROFILES_DIR),
            warm_inits=WARM_INITS.as_int(env),
        )
