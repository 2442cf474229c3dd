"""The service's view of profiles/languages/*.toml, read with tomllib (never via sandbox/)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / "profiles" / "languages"
_VERSION = re.compile(r"\(([^)]*)\)")
# Piston's names for our languages (its clients send these).
PISTON_ALIASES: dict[str, tuple[str, ...]] = {
    "python3": ("python", "py", "py3", "python3"),
    "javascript": ("javascript", "node", "node-js", "js"),
    "cpp": ("c++", "cpp", "g++"),
    "c": ("c", "gcc"),
    "bash": ("bash", "sh"),
    "ruby": ("ruby", "rb"),
    "rust": ("rust", "rs"),
    "go": ("go", "golang"),
    "java": ("java",),
    "perl": ("perl", "pl"),
    "php": ("php",),
    "lua": ("lua",),
    "pascal": ("pascal", "fpc"),
    "fortran": ("fortran", "gfortran"),
    "ocaml": ("ocaml", "ml"),
}


@dataclass(frozen=True)
class LanguageInfo:
    id: int
    key: str
    name: str
    source_file: str
    compile_cmd: str | None
    run_cmd: str
    tier: str = "container"  # the language's default isolation tier

    @property
    def version(self) -> str:
        m = _VERSION.search(self.name)
        return m.group(1) if m else "0.0.0"

    @property
    def aliases(self) -> tuple[str, ...]:
        return PISTON_ALIASES.get(self.key, (self.key,))


def load(directory: Path = DEFAULT_DIRECTORY) -> dict[int, LanguageInfo]:
    """Every language file's public face, by Judge0 id; a broken file raises ValueError."""
    out: dict[int, LanguageInfo] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text())
            compile_argv = [str(a) for a in data.get("compile", [])]
            info = LanguageInfo(
                id=int(data["id"]),
                key=str(data.get("key", path.stem)),
                name=str(data["name"]),
                source_file=str(data["source_file"]),
                compile_cmd=" ".join(compile_argv) or None,
                run_cmd=" ".join(str(a) for a in data["run"]),
                tier=str(data.get("tier", "container")),
            )
        except (KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as e:
            raise ValueError(f"{path}: {e}") from e
        out[info.id] = info
    return out


# Older Judge0 CE ids of the same languages (the Judge0 SDK sends 52 for C++ on 1.13.1).
JUDGE0_ALIASES = {48: 50, 49: 50, 52: 54, 53: 54}


def with_aliases(languages: dict[int, LanguageInfo]) -> dict[int, LanguageInfo]:
    """The languages plus each alias id that names one of them, sorted by id."""
    out = dict(languages)
    for alias, target in JUDGE0_ALIASES.items():
        if target in languages and alias not in languages:
            out[alias] = languages[target]
    return dict(sorted(out.items()))
