"""The service's view of the languages: what /languages and Piston's /runtimes show of each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from worker.jobs.languages import Language, LanguageError, load_languages

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


def load(directory: Path | None = None) -> dict[int, LanguageInfo]:
    """Every language's public face, by Judge0 id, from the workers' own loader: the API
    serves what the workers run, validated the same way (a broken file raises ValueError)."""
    try:
        languages = load_languages(directory)
    except LanguageError as e:
        raise ValueError(str(e)) from e
    return {i: _info(lang) for i, lang in languages.items()}


def _info(lang: Language) -> LanguageInfo:
    return LanguageInfo(
        id=lang.id,
        key=lang.key,
        name=lang.name,
        source_file=lang.source_file,
        compile_cmd=" ".join(lang.compile) or None,
        run_cmd=" ".join(lang.run),
        tier=lang.tier,
    )


# Older Judge0 CE ids of the same languages (the Judge0 SDK sends 52 for C++ on 1.13.1).
JUDGE0_ALIASES = {48: 50, 49: 50, 52: 54, 53: 54}


def with_aliases(languages: dict[int, LanguageInfo]) -> dict[int, LanguageInfo]:
    """The languages plus each alias id that names one of them, sorted by id."""
    out = dict(languages)
    for alias, target in JUDGE0_ALIASES.items():
        if target in languages and alias not in languages:
            out[alias] = languages[target]
    return dict(sorted(out.items()))
