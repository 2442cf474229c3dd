"""`stockade languages`: every language file's self-test, and whether it is served."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sandbox.errors import SandboxError

EXIT_ALL_ENABLED = 0
EXIT_SOME_DISABLED = 1
EXIT_BROKEN = 2  # a language file breaks the schema, or the box cannot start


def add_languages_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "languages",
        help="self-test every language and list which are enabled",
        description="Load profiles/languages/*.toml, run each language's self-test in real "
        "boxes (compile box, then run box) and list each with its state. Exit status: 0 all "
        "enabled, 1 some disabled, 2 a language file is invalid or no box could start.",
        allow_abbrev=False,
    )
    p.add_argument("--json", action="store_true", help="print a JSON list of {id, name, ...}")
    p.add_argument(
        "--rootfs",
        default="host",
        help="'host' (default), 'image' for each language's own image, or one image's name",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="KEY",
        help="test only this language (file stem or Judge0 id); repeatable",
    )
    p.add_argument("--workers", type=int, default=4, help="self-tests run at once (4)")


def run_languages(args: argparse.Namespace) -> int:
    # Lazily: sandbox/ must not import worker/ at module level (worker/ imports sandbox/).
    from worker.languages import LanguageError, load_languages, self_test_all

    try:
        languages = load_languages()
    except LanguageError as e:
        print(f"stockade languages: {e}", file=sys.stderr)
        return EXIT_BROKEN
    if args.only:
        wanted = set(args.only)
        languages = {i: lang for i, lang in languages.items() if {lang.key, str(i)} & wanted}
        unknown = wanted - {lang.key for lang in languages.values()} - set(map(str, languages))
        if unknown:
            print(f"stockade languages: --only: no language {sorted(unknown)}", file=sys.stderr)
            return EXIT_BROKEN
    try:
        from sandbox.launcher import Launcher

        with Launcher() as launcher:
            results = self_test_all(launcher, args.rootfs, languages, max(1, args.workers))
    except (SandboxError, OSError) as e:
        print(f"stockade languages: cannot start boxes: {e}", file=sys.stderr)
        return EXIT_BROKEN
    rows = [
        {
            "id": i,
            "key": languages[i].key,
            "name": languages[i].name,
            "enabled": enabled,
            "reason": reason,
        }
        for i, (enabled, reason) in sorted(results.items())
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            state = "enabled" if row["enabled"] else "DISABLED"
            print(f"{row['id']:>4}  {row['name']:<30} {state:<9} {row['reason']}")
    return EXIT_ALL_ENABLED if all(r["enabled"] for r in rows) else EXIT_SOME_DISABLED
