"""Piston's names for the languages Stockade serves: its `language`, `aliases` and `runtime`
(from each package's metadata.json in engineer-man/piston's packages/), and a SemVer
version derived from each language's display name."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PistonName:
    """How Piston's /runtimes shows a runtime. `runtime` is the package that provides the
    language where the package is named apart from it (gcc provides c, c++, d and fortran;
    node provides javascript); Piston omits it for a package named after its language."""

    language: str
    aliases: tuple[str, ...] = ()
    runtime: str | None = None


# By Stockade's language key. Piston's own aliases where it packages the language; where it
# does not (clang, Objective-C, plain text), names in its style that collide with none of its
# own: Piston resolves a name to the highest version among the runtimes that carry it, so
# clang's C under "c" would outrank GCC's (14.0.6 > 12.2.0) and take Piston's "c" from GCC.
PISTON_NAMES: dict[str, PistonName] = {
    "assembly": PistonName("nasm64", ("asm64", "nasm", "asm", "nasm-x64"), "nasm"),
    "bash": PistonName("bash", ("sh",)),
    "c": PistonName("c", ("gcc",), "gcc"),
    "c_clang": PistonName("clang", ("clang-c", "c-clang"), "clang"),
    "clojure": PistonName("clojure", ("clojure", "clj")),
    "cobol": PistonName("cobol", ("cob",)),
    "cpp": PistonName("c++", ("cpp", "g++"), "gcc"),
    "cpp_clang": PistonName("clang++", ("clang-cpp", "cpp-clang", "clang-c++"), "clang"),
    "csharp": PistonName(
        "csharp", ("mono", "mono-csharp", "mono-c#", "mono-cs", "c#", "cs"), "mono"
    ),
    "d": PistonName("d", ("gdc",), "gcc"),
    "elixir": PistonName("elixir", ("elixir", "exs")),
    "erlang": PistonName("erlang", ("erlang", "erl", "escript")),
    "fortran": PistonName("fortran", ("fortran", "f90"), "gcc"),
    "go": PistonName("go", ("go", "golang")),
    "groovy": PistonName("groovy", ("groovy", "gvy")),
    "haskell": PistonName("haskell", ("haskell", "hs")),
    "java": PistonName("java"),
    "javascript": PistonName(
        "javascript", ("node-javascript", "node-js", "javascript", "js"), "node"
    ),
    "kotlin": PistonName("kotlin", ("kt",)),
    "lisp": PistonName("lisp", ("lisp", "cl", "sbcl", "commonlisp")),
    "lua": PistonName("lua"),
    "objectivec": PistonName("objective-c", ("objc", "objectivec", "clang-objc"), "clang"),
    "ocaml": PistonName("ocaml", ("ocaml", "ml")),
    "octave": PistonName("octave", ("matlab", "m")),
    "pascal": PistonName("pascal", ("freepascal", "pp", "pas")),
    "perl": PistonName("perl", ("pl",)),
    "php": PistonName("php"),
    "plaintext": PistonName("plaintext", ("text", "txt", "plain")),
    "prolog": PistonName("prolog", ("prolog", "plg")),
    "python3": PistonName("python", ("py", "py3", "python3")),
    "r": PistonName("rscript", ("r",)),
    "ruby": PistonName("ruby", ("ruby3", "rb")),
    "rust": PistonName("rust", ("rs",)),
    "scala": PistonName("scala", ("sc",)),
    "sql": PistonName("sqlite3", ("sqlite", "sql")),
    "typescript": PistonName("typescript", ("ts", "node-ts", "tsc")),
}

_PARENS = re.compile(r"\(([^)]*)\)")
_NUMBERS = re.compile(r"\d+(?:\.\d+)*")
# Versionless languages (Plain Text): a release of 1.0.0, so every selector Piston's
# clients send for "latest" (`*`, `x`, `>=0`, `1`) still finds them.
VERSIONLESS = "1.0.0"


# Judge0's 44 (a binary as the source) and 89 (a zip of scripts) have no Piston form: Piston
# sends every file itself and runs text only, so /execute and /runtimes leave them out.
NOT_IN_PISTON = frozenset({"executable", "multi"})


def piston_name(key: str) -> PistonName:
    """The table's entry, or the key itself for a language added since."""
    return PISTON_NAMES.get(key) or PistonName(key.replace("_", "-"))


def semver_of(name: str) -> str:
    """`GCC 12.2.0` -> 12.2.0, `Java (OpenJDK 17.0.15)` -> 17.0.15, `Go (1.19.8)` -> 1.19.8;
    shorter versions padded (`1.14` -> 1.14.0), longer ones cut (`Mono 6.8.0.105` ->
    6.8.0) and leading zeros dropped (`NASM 2.16.01` -> 2.16.1): SemVer allows neither."""
    inside = _PARENS.search(name)
    m = _NUMBERS.search(inside.group(1) if inside else name)
    if m is None:
        return VERSIONLESS
    parts = [int(p) for p in m.group(0).split(".")[:3]]
    return ".".join(str(p) for p in parts + [0] * (3 - len(parts)))
