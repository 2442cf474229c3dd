"""Every language's self-test in real boxes, judged as a submission is: on the host's /usr and
on its Debian-layer image."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.launcher import Launcher
from worker.jobs.languages import Language, load_languages
from worker.jobs.model import Submission, TestCase, Verdict
from worker.judge import Judge
from worker.selftest import self_test

pytestmark = pytest.mark.privileged

LANGUAGES = sorted(load_languages().values(), key=lambda lang: lang.id)
IDS = [lang.key for lang in LANGUAGES]
HOST_CASES = [pytest.param(lang, id=lang.key) for lang in LANGUAGES]


def built_images() -> list[str] | None:
    """The layer store's images, or None where sandbox.images.store is not there yet."""
    try:
        from sandbox.images.store import LayerStore
    except ImportError:
        return None
    return LayerStore().images()


@pytest.mark.parametrize("language", HOST_CASES)
def test_self_test_on_host(launcher: Launcher, language: Language) -> None:
    enabled, reason = self_test(language, launcher, "host")
    assert enabled, f"{language.name}: {reason}"


@pytest.mark.parametrize("language", LANGUAGES, ids=IDS)
def test_self_test_on_image(launcher: Launcher, language: Language) -> None:
    images = built_images()
    if images is None or language.image not in images:
        pytest.skip(f"image {language.image} not built (stockade layers build {language.image})")
    enabled, reason = self_test(language, launcher, "image")
    assert enabled, f"{language.name} on image {language.image}: {reason}"


def test_wrong_output_disables(launcher: Launcher) -> None:
    python = load_languages()[71]
    broken = dataclasses.replace(
        python, self_test=dataclasses.replace(python.self_test, expected_stdout="nope\n")
    )
    enabled, reason = self_test(broken, launcher)
    assert not enabled
    assert "expected 'nope\\n'" in reason


def test_compile_error_disables(launcher: Launcher) -> None:
    c = load_languages()[50]
    broken = dataclasses.replace(
        c, self_test=dataclasses.replace(c.self_test, source="int main( {")
    )
    enabled, reason = self_test(broken, launcher)
    assert not enabled
    assert reason.startswith("CE: "), reason
    assert "main.c:1" in reason and "error" in reason, reason


def test_missing_image_disables(launcher: Launcher) -> None:
    c = load_languages()[50]
    enabled, reason = self_test(c, launcher, "no-such-image")
    assert not enabled
    assert "no-such-image" in reason


def test_compiled_artifact_runs_in_many_boxes(launcher: Launcher) -> None:
    """Compile once, run twice: each case's run box gets the executable with its bit set."""
    c = load_languages()[50]
    judge = Judge(launcher, {50: c}, build_cache={})
    program = judge.build(50, c.self_test.source, {})
    assert {f.path for f in program.files} == {"main", "main.c"}
    assert all(f.mode == 0o755 for f in program.files)
    cases = (TestCase("2 3\n", "hello, world\n5\n"), TestCase("40 2\n", "hello, world\n42\n"))
    sub = Submission(source_code=c.self_test.source, language_id=50, test_cases=cases)
    result = judge.judge(sub)  # the build above, from the cache: one compile box in all
    assert [case.verdict for case in result.cases] == [Verdict.AC, Verdict.AC], result


def test_cli_lists_languages_as_json() -> None:
    stockade = str(Path(sys.executable).with_name("stockade"))
    p = subprocess.run(
        [stockade, "languages", "--json", "--only", "c", "--only", "71"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [(r["id"], r["enabled"]) for r in rows] == [(50, True), (71, True)]
    assert {"id", "name", "enabled", "reason"} <= set(rows[0])
    assert rows[0]["name"].startswith("C (GCC ")


def test_cli_refuses_unknown_language() -> None:
    stockade = str(Path(sys.executable).with_name("stockade"))
    p = subprocess.run(
        [stockade, "languages", "--only", "swift"], capture_output=True, timeout=60, check=False
    )
    assert p.returncode == 2
    assert b"swift" in p.stderr


def test_typescript_reads_stdin_with_nodes_types_on_its_image(launcher: Launcher) -> None:
    """Debian's nodejs brings @types/node: on the typescript image a program that uses
    `process.stdin` without declaring it type-checks and runs."""
    ts = load_languages()[74]
    images = built_images()
    if images is None or ts.image not in images:
        pytest.skip(f"image {ts.image} not built (stockade layers build {ts.image})")
    source = (
        'let data = "";\n'
        'process.stdin.on("data", (chunk: Buffer) => { data += chunk.toString(); });\n'
        'process.stdin.on("end", () => {\n'
        "    const [a, b] = data.trim().split(/\\s+/).map(Number);\n"
        "    console.log(a * b);\n"
        "});\n"
    )
    judge = Judge(launcher, {74: ts}, rootfs="image")
    result = judge.judge(Submission(source, 74, stdin="6 7\n", expected_output="42\n"))
    assert result.verdict is Verdict.AC, result.compile_output or result.message


@pytest.mark.parametrize("rootfs", ["host", "image"])
def test_an_elf_binary_runs_as_executable(launcher: Launcher, rootfs: str) -> None:
    """Language 44: a real binary (the rootfs's own cat, linked against its libc) sent as
    base64 bytes reaches the box byte for byte and runs."""
    executable = load_languages()[44]
    images = built_images()
    if rootfs == "image" and (images is None or executable.image not in images):
        pytest.skip(f"image {executable.image} not built")
    elf = Path(shutil.which("cat") or "/bin/cat").read_bytes()
    sub = Submission(
        base64.b64encode(elf).decode(), 44, stdin="4 2\n", expected_output="4 2\n",
        source_base64=True,
    )  # fmt: skip
    result = Judge(launcher, {44: executable}, rootfs=rootfs).judge(sub)
    assert result.verdict is Verdict.AC, result.message or result.cases
