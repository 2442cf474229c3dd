"""The service's view of the languages: what /languages and Piston's /runtimes show of each."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from service.piston_names import NOT_IN_PISTON, PistonName, piston_name, semver_of
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
    binary_source: bool = False  # the source is the program's bytes (44, Executable)

    @property
    def version(self) -> str:
        m = _VERSION.search(self.name)
        return m.group(1) if m else "0.0.0"

    @property
    def piston(self) -> PistonName:
        """The language's name, aliases and runtime in Piston's /runtimes."""
        return piston_name(self.key)

    @property
    def in_piston(self) -> bool:
        """Whether Piston's API serves it (see piston_names.NOT_IN_PISTON)."""
        return self.key not in NOT_IN_PISTON

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
        binary_source=lang.executable_source,
    )


# Older Judge0 CE ids of the same languages (the Judge0 SDK sends 52 for C++ on 1.13.1), with
# the compiler Judge0 named them after: GCC 12.2 serves them all.
JUDGE0_ALIASES = {48: 50, 49: 50, 52: 54, 53: 54}
_ALIAS_NAMES = {
    48: "C (GCC 7.4.0)",
    49: "C (GCC 8.3.0)",
    52: "C++ (GCC 7.4.0)",
    53: "C++ (GCC 8.3.0)",
}
# Judge0 CE 1.13.1's active ids that Debian 12 has no toolchain for: their Judge0 names, and
# why they are not served (listed as archived in /languages/all).
UNSERVED = {
    47: ("Basic (FBC 1.07.1)", "Debian 12 packages no FreeBASIC compiler"),
    70: ("Python (2.7.17)", "Debian 12 packages no Python 2"),
    83: ("Swift (5.2.3)", "Debian 12 packages no Swift compiler"),
    84: ("Visual Basic.Net (vbnc 0.0.0.5943)", "Debian 12 packages no VB.NET compiler"),
    87: ("F# (.NET Core SDK 3.1.202)", "Debian 12 packages no .NET SDK or F# compiler"),
}


def with_aliases(languages: dict[int, LanguageInfo]) -> dict[int, LanguageInfo]:
    """The languages plus each alias id that names one of them, sorted by id. An alias keeps
    its target's commands and says in its name which Judge0 language it stands for, so that
    a list never shows two rows of the same name."""
    out = dict(languages)
    for alias, target in JUDGE0_ALIASES.items():
        lang = languages.get(target)
        if lang is not None and alias not in languages:
            out[alias] = replace(lang, name=f"{lang.name} for Judge0's {_ALIAS_NAMES[alias]}")
    return dict(sorted(out.items()))


def refusal(language_id: int) -> str:
    """Why a submission's language id is refused: archived (no toolchain), or unknown."""
    unserved = UNSERVED.get(language_id)
    if unserved is not None:
        name, why = unserved
        return f"language with id {language_id} ({name}) is archived: {why}"
    return f"language with id {language_id} doesn't exist"


def listing(
    languages: dict[int, LanguageInfo], disabled: set[int], archived: bool
) -> list[dict[str, object]]:
    """Judge0's /languages (archived=False: the languages served) or /languages/all (every
    id, `is_archived` true for a disabled language and for the ids no toolchain serves),
    sorted by name as Judge0 sorts them."""
    rows: list[dict[str, object]] = [
        {"id": i, "name": lang.name, **({"is_archived": lang.id in disabled} if archived else {})}
        for i, lang in with_aliases(languages).items()
        if archived or lang.id not in disabled
    ]
    if archived:
        rows += [
            {"id": i, "name": name, "is_archived": True}
            for i, (name, _) in UNSERVED.items()
            if i not in languages
        ]
    return sorted(rows, key=lambda row: (str(row["name"]), int(str(row["id"]))))
