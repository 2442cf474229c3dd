"""`stockade config`: every STOCKADE_ setting this command knows, its value here and its
default; `--markdown` writes the table docs/operating.md carries."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sandbox.settings import DECLARED, Setting


def add_config_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "config",
        help="list every STOCKADE_ setting: its value here, its default, what it does",
        description=__doc__,
    )
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="a JSON list of objects")
    form.add_argument("--markdown", action="store_true", help="the documentation's table")


def value_here(s: Setting) -> str:
    """The value this environment gives, as an operator would write it; a bad one says why."""
    if not s.is_set():
        return "(default)"
    if s.secret:
        return "(set)"
    try:
        return s.spell(s.read())
    except ValueError as e:
        return f"INVALID: {e}"


def rows() -> list[dict[str, str]]:
    return [
        {
            "name": s.name,
            "value": value_here(s),
            "default": s.spell(s.default),
            "choices": ", ".join(c or '""' for c in s.choices),
            "doc": s.doc,
        }
        for s in sorted(DECLARED.values(), key=lambda s: s.name)
    ]


def markdown() -> str:
    lines = ["| variable | default | what it sets |", "|---|---|---|"]
    for r in rows():
        default = f"`{r['default']}`" if r["default"] else "(empty)"
        choices = f" One of: {r['choices']}." if r["choices"] else ""
        lines.append(f"| `{r['name']}` | {default} | {r['doc']}.{choices} |")
    return "\n".join(lines) + "\n"


def run_config(args: argparse.Namespace) -> int:
    if args.json:
        sys.stdout.write(json.dumps(rows(), indent=1) + "\n")
    elif args.markdown:
        sys.stdout.write(markdown())
    else:
        table = rows()
        width = max(len(r["name"]) for r in table)
        for r in table:
            sys.stdout.write(f"{r['name']:<{width}}  {r['value']:<12} default {r['default']!r}\n")
            sys.stdout.write(f"{'':<{width}}  {r['doc']}\n")
    return 1 if any(r["value"].startswith("INVALID") for r in rows()) else 0
