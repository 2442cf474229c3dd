"""The code's shape: no import circles anywhere, no import that dodges the layering (lint's
import contracts see only what grimp sees), and a zygote that stays light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sandbox", "worker", "service")
# What the zygote may hold beyond a bare interpreter's modules: every box's init is a fork
# of it, so each module here is copied (copy-on-write, then touched) into every box.
ZYGOTE_MAX_MODULES = 92  # measured 2026-12-07: 92 before the tree was reorganised, 90 after


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    modules = sorted(m for m in graph.modules if m.split(".")[0] in PACKAGES)
    for start in modules:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child.split(".")[0] not in PACKAGES:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        component.append(m)
                        if m == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_circles() -> None:
    cycles = _cycles(grimp.build_graph(*PACKAGES))
    assert not cycles, cycles


def test_the_circle_finder_finds_a_circle() -> None:
    graph = grimp.ImportGraph()
    for m in ("sandbox.a", "sandbox.b", "sandbox.c"):
        graph.add_module(m)
    graph.add_import(importer="sandbox.a", imported="sandbox.b")
    graph.add_import(importer="sandbox.b", imported="sandbox.a")
    graph.add_import(importer="sandbox.b", imported="sandbox.c")
    assert _cycles(graph) == [["sandbox.a", "sandbox.b"]]


def _imports_in_functions(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import inside a function body, or by importlib."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.append((node.lineno, node.module))
            elif isinstance(node, ast.Import):
                found += [(node.lineno, a.name) for a in node.names]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            arg = node.args[0] if node.args else None
            literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            # sandbox/__init__.py's lazy exports name only sandbox's own modules, in _EXPORTS.
            if not literal and path.parts[-2:] != ("sandbox", "__init__.py"):
                found.append((node.lineno, "importlib.import_module(<computed>)"))
            elif literal:
                found.append((node.lineno, str(getattr(arg, "value", ""))))
    return found


def test_no_function_local_or_importlib_import_crosses_a_layer() -> None:
    """Such an import hides a layering break from lint until it runs."""
    import sandbox

    assert all(m.startswith("sandbox.") for m in sandbox._EXPORTS.values())
    crossing = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, module in _imports_in_functions(path):
                top = module.split(".")[0]
                if (top in PACKAGES and top != package) or "<computed>" in module:
                    crossing.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert not crossing, crossing


def test_the_zygote_imports_little() -> None:
    """The zygote's modules, measured in a fresh interpreter as the launcher starts it (-S):
    a later import in its path (typing, a package __init__ that pulls in a backend) would
    be copied into every box."""
    code = (
        "import sys, json; base = set(sys.modules); "
        "import sandbox.backends.container.zygote; "
        "print(json.dumps(sorted(set(sys.modules) - base)))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    loaded = json.loads(out)
    heavy = {"typing", "subprocess", "asyncio", "logging", "pathlib", "tomllib"}
    assert not heavy & set(loaded), sorted(heavy & set(loaded))
    ours = [m for m in loaded if m.split(".")[0] == "sandbox"]
    assert not [m for m in ours if m.startswith(("sandbox.tiers", "sandbox.launcher"))], ours
    assert len(loaded) <= ZYGOTE_MAX_MODULES, (len(loaded), loaded)
