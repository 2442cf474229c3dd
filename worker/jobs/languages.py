"""Languages: profiles/languages/*.toml loaded and validated once (worker/selftest.py judges
each one's self-test)."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.config import PROFILES_DIR
from sandbox.sizes import parse_size
from sandbox.spec import MIB, TIERS, BoxSpec, Limits, validate

DEFAULT_DIRECTORY = PROFILES_DIR / "languages"
# A compile box's defaults where a file has no [compile_limits]: compilers need more of
# everything than the programs they build (rustc, go build and javac above all).
COMPILE_DEFAULTS = Limits(
    cpu_time_s=20.0,
    wall_time_s=40.0,
    memory_bytes=1024 * MIB,
    pids=128,
    output_bytes=1 * MIB,
    fsize_bytes=256 * MIB,
    scratch_bytes=512 * MIB,
)
IMAGE = "image"  # as a rootfs: each language's own image
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Placeholders an argv may hold, filled from the limits of the box it runs in (the JVM sizes
# its heap from the RAM it sees, which is the host's: the box's cgroup is not visible to it).
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
PLACEHOLDERS = {
    "memory_bytes": lambda lim: str(lim.memory_bytes),
    "memory_mib": lambda lim: str(lim.memory_bytes // MIB),
    "pids": lambda lim: str(lim.pids),
}
# A compile argv word that is exactly this takes a submission's compiler_options (zero or
# more words) in its place; without it they go after the program name. Assembly's argv is
# a `sh -c` line: the options must reach NASM, not sh.
OPTIONS_WORD = "{compiler_options}"
_LIMIT_TYPES = {f.name: f.type for f in dataclasses.fields(Limits)}
_REQUIRED = ("id", "name", "source_file", "run", "image", "self_test")


class LanguageError(ValueError):
    """A language file breaks the schema; the message names the file and the field."""


@dataclass(frozen=True)
class SelfTest:
    """A program, its stdin and the exact stdout it must print."""

    source: str
    stdin: str
    expected_stdout: str
    # Judge0's additional_files as plain names and texts, zipped by the self-test (language
    # 89, a multi-file program, is nothing but these).
    files: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Language:
    """One language file, validated. Argvs are literal: no shell, no placeholders."""

    id: int
    key: str
    name: str
    source_file: str
    compile: tuple[str, ...]
    run: tuple[str, ...]
    image: str
    packages: tuple[str, ...]
    compile_profile: str
    run_profile: str
    limits: Limits
    compile_limits: Limits
    self_test: SelfTest
    env: tuple[tuple[str, str], ...] = ()
    executables: tuple[str, ...] = ()
    # The weakest isolation this language's programs run in (a request may ask for more).
    tier: str = "container"
    # The source is the program itself (Judge0's 44, Executable): written 0755, not 0644.
    executable_source: bool = False


def load_languages(directory: Path | None = None) -> dict[int, Language]:
    """Every *.toml in `directory` by Judge0 id; raises LanguageError on the first bad file."""
    directory = directory or DEFAULT_DIRECTORY
    profiles = directory.parent / "seccomp"
    languages: dict[int, Language] = {}
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise LanguageError(f"{directory}: no language files (*.toml)")
    for path in files:
        lang = load_language(path, profiles)
        other = languages.get(lang.id)
        if other is not None:
            raise LanguageError(f"{path}: id: {lang.id} is already used by {other.key}.toml")
        languages[lang.id] = lang
    return languages


def load_language(path: Path, profiles: Path | None = None) -> Language:
    """One language file. `profiles` is the seccomp directory whose *.json names may be used."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise LanguageError(f"{path}: {e}") from None
    try:
        return _parse(data, path.stem, profiles)
    except _FieldError as e:
        raise LanguageError(f"{path}: {e.field}: {e.rule}") from None


class _FieldError(Exception):
    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


def _parse(data: dict[str, Any], stem: str, profiles: Path | None) -> Language:
    known = {f.name for f in dataclasses.fields(Language)}
    for name in data:
        if name not in known:
            raise _FieldError(name, "unknown field")
    for name in _REQUIRED:
        if name not in data:
            raise _FieldError(name, "is required")
    key = _string(data, "key", stem)
    if key != stem or not _KEY.match(key):
        raise _FieldError("key", f"must equal the file name {stem!r} (lowercase letters, digits)")
    lang_id = data["id"]
    if isinstance(lang_id, bool) or not isinstance(lang_id, int) or lang_id < 1:
        raise _FieldError("id", f"must be a Judge0 id (a positive integer), got {lang_id!r}")
    source_file = _matching(data, "source_file", _FILE, "a plain file name in /box")
    image = _matching(data, "image", _IMAGE, "an image name (lowercase letters, digits, . _ -)")
    compile_argv = _argv(data, "compile", allow_empty=True)
    executables = tuple(_file_name("executables", name) for name in _strings(data, "executables"))
    if executables and not compile_argv:
        raise _FieldError("executables", "only a compiled language has executables")
    return Language(
        id=lang_id,
        key=key,
        name=_string(data, "name"),
        source_file=source_file,
        compile=compile_argv,
        run=_argv(data, "run", allow_empty=False),
        image=image,
        packages=_strings(data, "packages"),
        compile_profile=_profile(data, "compile_profile", "compile", profiles),
        run_profile=_profile(data, "run_profile", "run", profiles),
        limits=_limits(data, "limits", Limits()),
        compile_limits=_limits(data, "compile_limits", COMPILE_DEFAULTS),
        self_test=_self_test(data),
        env=_env(data),
        executables=executables,
        tier=_tier(data),
        executable_source=_flag(data, "executable_source"),
    )


def _flag(data: dict[str, Any], field: str) -> bool:
    value = data.get(field, False)
    if not isinstance(value, bool):
        raise _FieldError(field, f"must be true or false, got {value!r}")
    return value


def _tier(data: dict[str, Any]) -> str:
    value = data.get("tier", "container")
    if value not in TIERS:
        raise _FieldError("tier", f"must be one of {', '.join(TIERS)}, got {value!r}")
    return str(value)


def _string(data: dict[str, Any], field: str, default: str | None = None) -> str:
    value = data.get(field, default)
    if not isinstance(value, str) or not value:
        raise _FieldError(field, f"must be a non-empty string, got {value!r}")
    return value


def _matching(data: dict[str, Any], field: str, pattern: re.Pattern[str], what: str) -> str:
    value = _string(data, field)
    if not pattern.match(value):
        raise _FieldError(field, f"must be {what}, got {value!r}")
    return value


def _file_name(field: str, value: str) -> str:
    if not _FILE.match(value):
        raise _FieldError(field, f"{value!r} must be a plain file name in /box")
    return value


def _strings(data: dict[str, Any], field: str) -> tuple[str, ...]:
    value = data.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _FieldError(field, f"must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def _argv(data: dict[str, Any], field: str, *, allow_empty: bool) -> tuple[str, ...]:
    argv = _strings(data, field)
    if not argv and not allow_empty:
        raise _FieldError(field, "needs at least the program name")
    if any("\0" in a for a in argv):
        raise _FieldError(field, "must not contain NUL bytes")
    if OPTIONS_WORD in argv and (field != "compile" or argv.count(OPTIONS_WORD) > 1):
        raise _FieldError(field, f"{OPTIONS_WORD} may stand once, as a whole word, in compile")
    for arg in argv:
        if arg == OPTIONS_WORD:
            continue
        for name in _PLACEHOLDER.findall(arg):
            if name not in PLACEHOLDERS:
                known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                raise _FieldError(field, f"unknown placeholder {{{name}}} (known: {known})")
    return argv


def _profile(data: dict[str, Any], field: str, default: str, profiles: Path | None) -> str:
    name = _string(data, field, default)
    if profiles is not None and not (profiles / f"{name}.json").is_file():
        raise _FieldError(field, f"no seccomp profile {name!r} in {profiles}")
    return name


def _limits(data: dict[str, Any], field: str, base: Limits) -> Limits:
    table = data.get(field, {})
    if not isinstance(table, dict):
        raise _FieldError(field, "must be a table")
    values: dict[str, Any] = {}
    for name, value in table.items():
        if name not in _LIMIT_TYPES:
            raise _FieldError(f"{field}.{name}", "unknown limit")
        if name.endswith("_bytes") and isinstance(value, str):
            try:
                value = parse_size(value)
            except ValueError as e:
                raise _FieldError(f"{field}.{name}", str(e)) from None
        if name.endswith("_s") and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        values[name] = value
    limits = dataclasses.replace(base, **values)
    # The box's own rules, so that a file cannot hold a limit every box would refuse.
    for problem in validate(BoxSpec(argv=("x",), limits=limits)):
        if problem.startswith("limits."):
            name, _, rule = problem.partition(": ")
            raise _FieldError(f"{field}.{name.removeprefix('limits.')}", rule)
    return limits


def _self_test(data: dict[str, Any]) -> SelfTest:
    table = data["self_test"]
    if not isinstance(table, dict):
        raise _FieldError("self_test", "must be a table")
    for name in table:
        if name not in ("source", "stdin", "expected_stdout", "files"):
            raise _FieldError(f"self_test.{name}", "unknown field")
    files = _self_test_files(table.get("files", {}))
    values = {}
    for name in ("source", "stdin", "expected_stdout"):
        default = "" if name == "stdin" or (name == "source" and files) else None
        value = table.get(name, default)
        if not isinstance(value, str) or (name == "source" and not value and not files):
            raise _FieldError(f"self_test.{name}", f"must be a string, got {value!r}")
        values[name] = value
    return SelfTest(**values, files=files)


def _self_test_files(table: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(table, dict):
        raise _FieldError("self_test.files", 'must be a table of name = "text"')
    for name, text in table.items():
        _file_name(f"self_test.files.{name}", name)
        if not isinstance(text, str):
            raise _FieldError(f"self_test.files.{name}", f"must be a string, got {text!r}")
    return tuple(sorted(table.items()))


def _env(data: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    table = data.get("env", {})
    if not isinstance(table, dict):
        raise _FieldError("env", 'must be a table of NAME = "value"')
    for name, value in table.items():
        if not _ENV.match(name) or not isinstance(value, str) or "\0" in value:
            raise _FieldError(f"env.{name}", 'must be NAME = "value" (a string without NUL)')
    return tuple(sorted(table.items()))


# --- Argvs and rootfs, as the judge uses them ----------------------------------------------


def expand(argv: tuple[str, ...], limits: Limits) -> tuple[str, ...]:
    """The argv with its placeholders filled from the limits of the box it runs in
    (OPTIONS_WORD stays: with_options() fills it)."""
    return tuple(
        a if a == OPTIONS_WORD else _PLACEHOLDER.sub(lambda m: PLACEHOLDERS[m.group(1)](limits), a)
        for a in argv
    )


def with_options(argv: tuple[str, ...], options: list[str]) -> tuple[str, ...]:
    """A compile argv with a submission's compiler_options: in place of OPTIONS_WORD where
    the file puts it, else right after the program name."""
    if OPTIONS_WORD in argv:
        i = argv.index(OPTIONS_WORD)
        return (*argv[:i], *options, *argv[i + 1 :])
    return (*argv[:1], *options, *argv[1:])


def renamed(language: Language, path: str) -> Language:
    """The language with its program at `path` (a relative path in /box, checked by the
    submission's rules) instead of its source_file: the source file's name is replaced
    wherever an argv word names it (`javac Main.java`, `sh -c '... main.asm ...'`).
    Toolchains also name outputs after the source (Java's public class, tsc's script.js,
    groovyc's class, Kotlin's MainKt), so a whole word that is the source's stem, alone,
    with another extension or with Kotlin's `Kt`, follows the new stem too (`java Main`);
    never an `executables` entry (`gcc -o main`: the judge checks for that name)."""
    old = language.source_file
    if not path or path == old:
        return language
    old_stem, new_stem = _stem(old), _stem(path.rsplit("/", 1)[-1])
    exact = re.compile(rf"(?<![\w./-]){re.escape(old)}(?![\w.-])")
    follows = re.compile(rf"^{re.escape(old_stem)}(Kt|\.[A-Za-z0-9]+)?$")
    pinned = {*language.executables, *(_stem(e) for e in language.executables)}

    def word(w: str) -> str:
        w = exact.sub(path, w)
        m = follows.match(w)
        if m is None or w in pinned:
            return w
        if m.group(1) == "Kt":  # Kotlin's file class: the name capitalised, then Kt
            return new_stem[:1].upper() + new_stem[1:] + "Kt"
        return _stem(path) + m.group(1) if m.group(1) else new_stem

    return dataclasses.replace(
        language,
        source_file=path,
        compile=tuple(word(w) for w in language.compile),
        run=tuple(word(w) for w in language.run),
    )


def _stem(name: str) -> str:
    """The name without its extension (the directory, if any, kept)."""
    base = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(base)] + base.rsplit(".", 1)[0] if "." in base else name


def rootfs_for(language: Language, rootfs: str) -> str:
    """`image` means the language's own image; any other name is used as it is."""
    return language.image if rootfs == IMAGE else rootfs
