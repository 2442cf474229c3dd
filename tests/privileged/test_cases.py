"""Data-driven cases (tests/cases/*.toml): program, language, limits, tests, expected verdict.

A case names its language by key ("multi" is Judge0's 89), its program inline (`source`) or
as a shared file (`program = "progs/..."`: every case of one file shares one build), and
`expected`; optionally `signal`, `judge0_status`, `score` and a `message` the result must
contain. [submission] holds Judge0 fields, [checker] and [interactor] the problem's own
programs, [files] the additional_files zip, `archive` a hostile zip built here.
"""

from __future__ import annotations

import base64
import io
import stat
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from worker.jobs.model import CheckerSpec, Program, Submission, TestCase

pytestmark = pytest.mark.privileged
CASES = Path(__file__).resolve().parent.parent / "cases"
FILES = sorted(CASES.glob("*.toml"))


@pytest.fixture(scope="module")
def judge(launcher: Any) -> Iterator[Any]:
    from worker.judge import Judge

    yield Judge(launcher, build_cache={})


def _language_id(judge: Any, key: str) -> int:
    if key == "multi":
        return 89
    ids = [lang.id for lang in judge.languages.values() if lang.key == key]
    assert ids, f"no language {key!r}"
    return int(ids[0])


def _program(judge: Any, table: dict[str, Any] | None) -> Program | None:
    if table is None:
        return None
    return Program(table["source"], _language_id(judge, table["language"]), table["convention"])


def _zip(entries: dict[str, tuple[bytes, int]]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (data, mode) in entries.items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return base64.b64encode(buf.getvalue()).decode()


HOSTILE = {
    "slip": {"../../etc/cron.d/evil": (b"* * * * * root id\n", stat.S_IFREG | 0o644)},
    "symlink": {"passwd": (b"/etc/passwd", stat.S_IFLNK | 0o777)},
    "bomb": {"zeros": (b"\0" * (64 << 20), stat.S_IFREG | 0o644)},
}


def _submission(judge: Any, case: dict[str, Any]) -> Submission:
    source = case.get("source", "")
    if "program" in case:
        source = (CASES / case["program"]).read_text()
    files = {k: (v.encode(), stat.S_IFREG | 0o644) for k, v in case.get("files", {}).items()}
    archive = _zip(HOSTILE[case["archive"]]) if "archive" in case else _zip(files) if files else ""
    checker = dict(case.get("checker", {"kind": "judge0"}))
    checker["program"] = _program(judge, checker.get("program"))
    tests = tuple(
        TestCase(t.get("input", ""), t.get("output"), float(t.get("points", 1.0)))
        for t in case["tests"]
    )
    return Submission(
        source_code=source,
        language_id=_language_id(judge, case["language"]),
        additional_files=archive,
        test_cases=tests,
        checker=CheckerSpec(**checker),
        interactor=_program(judge, case.get("interactor")),
        **case.get("submission", {}),
    )


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_case(judge: Any, path: Path) -> None:
    case = tomllib.loads(path.read_text())
    result = judge.judge(_submission(judge, case))
    detail = f"{result.message} {result.compile_output[:300]}".strip()
    cases = [(c.verdict.value, c.message[:80], c.time, c.memory) for c in result.cases]
    assert result.verdict.value == case["expected"], f"{detail} {cases}"
    if "message" in case:
        assert case["message"] in f"{result.message} {result.compile_output}", detail
    deciding = result.deciding_case()
    if "signal" in case:
        assert deciding is not None and deciding.signal == case["signal"], cases
    if "judge0_status" in case:
        assert result.judge0_status() == case["judge0_status"], cases
    if "score" in case:
        assert result.score == case["score"]
    for c in result.cases:
        assert c.time >= 0 and c.memory >= 0


def test_there_are_enough_cases() -> None:
    cases = [tomllib.loads(p.read_text()) for p in FILES]
    verdicts = {c["expected"] for c in cases}
    assert len(cases) >= 60
    assert {"AC", "WA", "TLE", "MLE", "RE", "OLE", "CE"} <= verdicts
    assert len({c["language"] for c in cases} - {"multi"}) >= 8
