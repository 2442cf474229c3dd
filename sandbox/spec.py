"""BoxSpec and Limits: the frozen, JSON-serialisable description of one box."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import posixpath
import re
from dataclasses import dataclass, field

# Not typing.TYPE_CHECKING: typing costs the zygote a megabyte (see sandbox/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
MAX_BYTES = 1 << 50  # 1 PiB: far above any box, far below the kernel's 64-bit limits
DAY_S = 86400.0
# Weakest first: an operator's minimum tier admits it and every tier after it.
TIERS = ("container", "gvisor", "microvm")


@dataclass(frozen=True)
class Limits:
    """Per-box limits. Units are in the field names; defaults suit a judge."""

    cpu_time_s: float = 5.0
    wall_time_s: float = 10.0
    memory_bytes: int = 256 * MIB
    pids: int = 64
    output_bytes: int = 1 * MIB
    fsize_bytes: int = 64 * MIB
    scratch_bytes: int = 64 * MIB
    scratch_inodes: int = 16384
    nofile: int = 256
    # None: the stack may grow up to the memory limit, as on Codeforces and isolate's default.
    stack_bytes: int | None = None


@dataclass(frozen=True)
class FileIn:
    """A file placed in the box before the program starts."""

    path: str
    content: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class BoxSpec:
    """Everything one box needs: program, files, limits, root file system, profile, network."""

    argv: tuple[str, ...]
    files: tuple[FileIn, ...] = ()
    stdin: bytes = b""
    env: tuple[tuple[str, str], ...] = ()
    limits: Limits = field(default_factory=Limits)
    rootfs: str = "host"
    profile: str = "run"
    network: bool = False
    # Box paths read back after the run (regular files only, never through a symlink); one
    # ending in "/" is a directory whose every regular file comes back.
    collect: tuple[str, ...] = ()
    collect_max_bytes: int = 64 * MIB
    # Which isolation runs the box: "container" (namespaces), "gvisor" (runsc) or "microvm".
    tier: str = "container"

    def to_json(self) -> str:
        return json.dumps(_encode(dataclasses.asdict(self)), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BoxSpec:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BoxSpec:
        d = dict(data)
        d["argv"] = tuple(d["argv"])
        d["files"] = tuple(
            FileIn(f["path"], base64.b64decode(f["content"]), int(f.get("mode", 0o644)))
            for f in d.get("files", ())
        )
        d["stdin"] = base64.b64decode(d.get("stdin", ""))
        d["env"] = tuple((str(k), str(v)) for k, v in d.get("env", ()))
        d["limits"] = Limits(**d.get("limits", {}))
        d["collect"] = tuple(d.get("collect", ()))
        return cls(**d)


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def strongest(*tiers: str) -> str:
    """The strongest of the given tiers ("" counts as none): an operator's minimum or a
    language's default can raise a request's tier, never lower it."""
    known = [t for t in tiers if t]
    return max(known, key=TIERS.index) if known else TIERS[0]


def box_path(path: str) -> str:
    """Absolute, normalised path inside the box; relative paths are relative to /box."""
    full = posixpath.normpath(posixpath.join("/box", path))
    return full


def validate(spec: BoxSpec) -> list[str]:
    """Every rule the spec breaks, as 'field: rule' sentences (empty when valid)."""
    errors: list[str] = []
    lim = spec.limits
    if not all(isinstance(a, str) for a in spec.argv):
        errors.append("argv: every item must be a string")
        return errors
    if not spec.argv or not spec.argv[0]:
        errors.append("argv: needs at least the program name")
    if any("\0" in a for a in spec.argv):
        errors.append("argv: must not contain NUL bytes")
    # (field, value, lowest, highest): the highest keeps every value inside what the
    # kernel takes (64-bit rlimits, pid_max, nr_open) and what a judge could mean.
    checks: list[tuple[str, float, float, float]] = [
        ("cpu_time_s", lim.cpu_time_s, 0.001, DAY_S),
        ("wall_time_s", lim.wall_time_s, 0.001, DAY_S),
        ("memory_bytes", lim.memory_bytes, 4 * MIB, MAX_BYTES),
        ("pids", lim.pids, 1, 4 * 1024 * 1024),
        ("output_bytes", lim.output_bytes, 0, MAX_BYTES),
        ("fsize_bytes", lim.fsize_bytes, 0, MAX_BYTES),
        ("scratch_bytes", lim.scratch_bytes, 64 * KIB, MAX_BYTES),
        ("scratch_inodes", lim.scratch_inodes, 64, 1 << 31),
        ("nofile", lim.nofile, 8, 1 << 20),
    ]
    if lim.stack_bytes is not None:
        checks.append(("stack_bytes", lim.stack_bytes, 64 * KIB, MAX_BYTES))
    for name, value, low, high in checks:
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"limits.{name}: must be a number, got {value!r}")
        elif isinstance(value, float) and not math.isfinite(value):
            errors.append(f"limits.{name}: must be a finite number, got {value}")
        elif value < low:
            errors.append(f"limits.{name}: must be at least {low}, got {value}")
        elif value > high:
            errors.append(f"limits.{name}: must be at most {high}, got {value}")
    for f in spec.files:
        p = box_path(f.path)
        if not (p.startswith("/box/") or p.startswith("/tmp/")):
            errors.append(f"files: {f.path!r} must resolve inside /box or /tmp")
    for key, _ in spec.env:
        if not key or "=" in key or "\0" in key:
            errors.append(f"env: {key!r} is not a valid variable name")
    for field_name, text in (("profile", spec.profile), ("rootfs", spec.rootfs)):
        if not _NAME.match(text):
            errors.append(f"{field_name}: {text!r} must be a plain name (letters, digits, . _ -)")
    if spec.tier not in TIERS:
        errors.append(f"tier: must be one of {', '.join(TIERS)}, got {spec.tier!r}")
    elif spec.network and spec.tier != "container":
        # The stronger tiers have no network device at all: none to grant, none to leak.
        errors.append(f"network: only the container tier grants a network, not {spec.tier}")
    for c in spec.collect:
        full = box_path(c)
        if not (full.startswith("/box/") or (c.endswith("/") and full == "/box")):
            errors.append(f"collect: {c!r} must resolve inside /box")
    return errors
