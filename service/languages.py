"""The service's view of the languages: what /languages and Piston's /runtimes show of each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from service.piston_names import PistonName, piston_name, semver_of
from worker.jobs.languages import Language, LanguageError, load_languages

_VERSION = re.compile(r"\(([^)]*)\)")


@dataclass(frozen=True)
class LanguageInfo:
    id: int
    key: str
    name: str
    source_file: str
    compile_cmd: str | None
    run_cmd: str
    tier: str = "container"  # the language's default isolation tier
    # The compile box's limits (the language's [compile_limits]): the most a request may ask.
    compile_cpu_s: float = 0.0
    compile_wall_s: float = 0.0
    compile_memory_bytes: int = 0

    @property
    def version(self) -> str:
        m = _VERSION.search(self.name)
        return m.group(1) if m else "0.0.0"

    @property
    def piston(self) -> PistonName:
        """The language's name, aliases and runtime in Piston's /runtimes."""
        return piston_name(self.key)

    @property
    def semver(self) -> str:
        """The installed version as SemVer (x.y.z), as Piston's selectors match it."""
        return semver_of(self.name)


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
        compile_cpu_s=lang.compile_limits.cpu_time_s,
        compile_wall_s=lang.compile_limits.wall_time_s,
        compile_memory_bytes=lang.compile_limits.memory_bytes,
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
