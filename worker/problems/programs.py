"""Programs as contestants and problem setters write them: a file or a directory of files, the
language from the contest systems' extension table, built once and cached by content."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from sandbox.launcher import Launcher
from sandbox.spec import MIB
from worker.jobs.languages import Language
from worker.jobs.packages.format import ProblemError, read_bytes
from worker.judge import Compiled, Judge

# The contest systems' extension table (Kattis and DOMjudge agree on these): the language each
# extension means there. Where Stockade has no such language, the name is reported.
CONTEST_EXTENSIONS = {
    ".c": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".C": "cpp",
    ".java": "java",
    ".kt": "kotlin",
    ".py": "python3",
    ".py3": "python3",
    ".pl": "prolog",  # Prolog in the contest systems' table; Stockade's own default is Perl
    ".rb": "ruby",
    ".js": "javascript",
    ".go": "go",
    ".rs": "rust",
    ".ml": "ocaml",
    ".pas": "pascal",
    ".php": "php",
    ".lua": "lua",
    ".f90": "fortran",
    ".f95": "fortran",
    ".sh": "bash",
    ".hs": "haskell",
    ".cs": "csharp",
    ".scala": "scala",
    ".swift": "swift",
    ".m": "objectivec",
    ".fs": "fsharp",
    ".cob": "cobol",
    ".d": "d",
    ".jl": "julia",
    ".ts": "typescript",
    ".lisp": "lisp",
    ".pm": "perl",
}
HEADERS = {".h", ".hh", ".hpp", ".hxx", ".inc"}
AMBIGUOUS = {".pl": ("prolog", "perl")}
# A syntax check for the interpreted languages, so that a syntax error is a compile error as
# in the contest systems (they run the same checks at compile time).
SYNTAX_CHECKS = {
    "python3": ("python3", "-m", "py_compile"),
    "perl": ("perl", "-c"),
    "ruby": ("ruby", "-c"),
    "php": ("php", "-l"),
    "javascript": ("node", "--check"),
    "bash": ("bash", "-n"),
    "lua": ("luac5.4", "-p"),
}
_MULTI_SOURCE = {"c": (".c",), "cpp": (".cc", ".cpp", ".cxx", ".c++", ".C")}
_JAVA_PACKAGE = re.compile(rb"^\s*package\s+([A-Za-z_][\w.]*)\s*;", re.M)
_KOTLIN_PACKAGE = re.compile(rb"^\s*package\s+([A-Za-z_][\w.]*)", re.M)
_JAVA_MAIN = re.compile(rb"static\s+(public\s+)?void\s+main\s*\(")
_SCRIPT_NOTE = ".stockade-package-scripts"
MAX_FILES = 64


@dataclass(frozen=True)
class Sources:
    """A program's files by their names relative to its file or directory, and its language."""

    files: tuple[tuple[str, bytes], ...]
    language: Language
    note: str = ""  # what the reader of a report should know (an ambiguous extension)


def read_sources(path: Path) -> tuple[tuple[str, bytes], ...]:
    """A file, or every regular file of a directory (hidden ones skipped)."""
    if path.is_file():
        return ((path.name, read_bytes(path)),)
    if not path.is_dir():
        raise ProblemError(f"{path}: no such file or directory")
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not p.is_symlink() and not p.name.startswith(".")
    )
    if not files or len(files) > MAX_FILES:
        raise ProblemError(f"{path}: a program of 1 to {MAX_FILES} files, found {len(files)}")
    return tuple((p.relative_to(path).as_posix(), read_bytes(p)) for p in files)


def choose_language(
    languages: dict[int, Language],
    names: list[str],
    choice: str = "",
    package_languages: tuple[str, ...] = (),
) -> tuple[Language, str]:
    """--language (a key or an id) decides; else the extensions by the contest systems'
    table. An ambiguous extension takes the package's `languages` list, else the table's
    meaning, and the report says so. A language Stockade has not is an error naming it."""
    by_key = {lang.key: lang for lang in languages.values()}
    if choice:
        for lang in languages.values():
            if choice in (lang.key, str(lang.id)):
                return lang, ""
        raise ProblemError(f"--language: no language {choice!r}")
    exts = {_ext(n) for n in names} - HEADERS
    keys = {CONTEST_EXTENSIONS[e] for e in exts if e in CONTEST_EXTENSIONS}
    if "cpp" in keys:
        keys.discard("c")  # C++ sources with C helpers build as C++
    if not keys:
        raise ProblemError(f"{', '.join(names)}: no language for {sorted(exts)}; pass --language")
    if len(keys) > 1:
        raise ProblemError(f"{', '.join(names)}: several languages {sorted(keys)}")
    key = keys.pop()
    note = ""
    for ext, meanings in AMBIGUOUS.items():
        if ext in exts:
            chosen = next((m for m in meanings if m in package_languages), meanings[0])
            others = " and ".join(m for m in meanings if m != chosen)
            note = f"{ext} is ambiguous ({chosen} here; also {others}); --language decides"
            key = chosen
    if key not in by_key:
        raise ProblemError(
            f"{', '.join(names)}: {key} (by the extension) is not a language Stockade has"
            + (f"; {note}" if note else "")
        )
    return by_key[key], note


def _ext(name: str) -> str:
    suffix = Path(name).suffix
    return suffix if suffix == ".C" else suffix.lower()


def plan(sources: Sources) -> tuple[Language, bytes, dict[str, bytes]]:
    """The language adapted to these files: the source file's name, every source of a multi
    file C/C++/Java program compiled, Java's class from the file's name and package, a syntax
    check for interpreted languages. Returns the variant, the main source and the rest."""
    lang = sources.language
    files = dict(sources.files)
    if lang.key == "java":
        return _java(lang, files)
    if lang.key == "kotlin":
        return _kotlin(lang, files)
    if lang.key in _MULTI_SOURCE:
        units = sorted(n for n in files if n.endswith(_MULTI_SOURCE[lang.key]))
        if not units:
            raise ProblemError(f"no {lang.key} source among {sorted(files)}")
        main = units[0]
        compile_argv = _swap(lang.compile, lang.source_file, units)
        return _variant(lang, main, compile_argv, lang.run), files.pop(main), files
    main = _main_file(lang, files)
    run = _swap(lang.run, lang.source_file, [main])
    compile_argv = _swap(lang.compile, lang.source_file, [main])
    if not lang.compile and lang.key in SYNTAX_CHECKS:
        compile_argv = (*SYNTAX_CHECKS[lang.key], main)
    return _variant(lang, main, compile_argv, run), files.pop(main), files


def script_plan(
    base: Language, files: dict[str, bytes]
) -> tuple[Language, bytes, dict[str, bytes]]:
    """A program with its own `build` and/or `run` scripts (the format's rule): build runs
    once, run runs it; `base` lends its image and profiles."""
    compile_argv = ("./build",) if "build" in files else ()
    variant = replace(
        base,
        source_file=_SCRIPT_NOTE,
        compile=compile_argv,
        run=("./run",),
        executables=(),
    )
    return variant, b"", files


def _java(lang: Language, files: dict[str, bytes]) -> tuple[Language, bytes, dict[str, bytes]]:
    """javac every .java into the box (-d .: a `package` declaration makes its directory);
    java runs the class whose file holds main, named from that file and its package."""
    units = sorted(n for n in files if n.endswith(".java"))
    mains = [n for n in units if _JAVA_MAIN.search(files[n])] or units
    if not mains:
        raise ProblemError(f"no .java source among {sorted(files)}")
    main = mains[0]
    pkg = _JAVA_PACKAGE.search(files[main])
    cls = Path(main).stem
    if pkg:
        cls = f"{pkg.group(1).decode()}.{cls}"
    compile_argv = _swap(lang.compile, lang.source_file, ["-d", ".", *units])
    run = _swap(lang.run, Path(lang.source_file).stem, [cls])
    return _variant(lang, main, compile_argv, run), files.pop(main), files


def _kotlin(lang: Language, files: dict[str, bytes]) -> tuple[Language, bytes, dict[str, bytes]]:
    """Kotlin's top-level main lives in the class named from its file: different.kt gives
    DifferentKt (with its package). The language file's own words (Main.kt, MainKt) are
    swapped for these, as Java's are."""
    units = sorted(n for n in files if n.endswith(".kt"))
    mains = [n for n in units if re.search(rb"\bfun\s+main\s*\(", files[n])] or units
    if not mains:
        raise ProblemError(f"no .kt source among {sorted(files)}")
    main = mains[0]
    stem = Path(main).stem
    cls = stem[:1].upper() + stem[1:] + "Kt"
    pkg = _KOTLIN_PACKAGE.search(files[main])
    if pkg:
        cls = f"{pkg.group(1).decode()}.{cls}"
    default = Path(lang.source_file).stem + "Kt"
    compile_argv = _swap(lang.compile, lang.source_file, units)
    run = _swap(lang.run, default, [cls])
    return _variant(lang, main, compile_argv, run), files.pop(main), files


def _main_file(lang: Language, files: dict[str, bytes]) -> str:
    ext = Path(lang.source_file).suffix
    units = sorted(n for n in files if n.endswith(ext)) or sorted(files)
    if len(units) == 1:
        return units[0]

    # The entry point: the one file that no other imports, else one that says __main__, else
    # one with a conventional name.
    def imported(name: str) -> bool:
        stem = re.escape(Path(name).stem.encode())
        pattern = re.compile(rb"^\s*(import|from)\s+" + stem + rb"\b", re.M)
        return any(pattern.search(files[other]) for other in units if other != name)

    roots = [n for n in units if not imported(n)]
    marked = [n for n in units if b"__main__" in files[n]]
    named = [n for n in units if Path(n).stem in ("main", "Main", "validate", "run")]
    return (roots if len(roots) == 1 else marked or named or units)[0]


def _swap(argv: tuple[str, ...], word: str, new: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for a in argv:
        out.extend(new if a == word else [a])
    return tuple(out)


def _variant(
    lang: Language, main: str, compile_argv: tuple[str, ...], run: tuple[str, ...]
) -> Language:
    return replace(lang, source_file=main, compile=compile_argv, run=run)


@dataclass
class Builder:
    """Builds programs through the judge's compile box, each distinct one (language variant,
    files, rootfs) once, however many threads ask for it at once."""

    launcher: Launcher
    languages: dict[int, Language]
    rootfs: str = "host"
    compile_time_s: float = 60.0
    compile_memory_mib: int = 1024
    # Every box of its programs runs at least this strongly (the operator's STOCKADE_MIN_TIER,
    # or the tier a submission through the API was placed in).
    min_tier: str = ""
    _cache: dict[object, Compiled] = field(default_factory=dict)
    _locks: dict[object, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def build(
        self, variant: Language, main: bytes, extra: dict[str, bytes], tier: str = ""
    ) -> Compiled:
        """Compiled, or worker.judge.BuildError (CE with the compiler's output)."""
        limits = replace(
            variant.compile_limits,
            cpu_time_s=self.compile_time_s,
            wall_time_s=2 * self.compile_time_s + 1,
            memory_bytes=self.compile_memory_mib * MIB,
        )
        variant = replace(variant, compile_limits=limits)
        key = (variant, main, tuple(sorted(extra.items())), self.rootfs, tier)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                judge = Judge(
                    self.launcher,
                    {variant.id: variant},
                    rootfs=self.rootfs,
                    min_tier=self.min_tier,
                )
                self._cache[key] = judge.build(
                    variant.id, main.decode("utf-8", "replace"), extra, "", tier
                )
            return self._cache[key]
