"""Uploaded packages on the worker's side: the model's problem field, the package unpacked once
per host whatever the race, a stored zip that is not its digest refused, an expired package an
IE naming the setting. A real redis-server, no box."""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path
from typing import cast

import pytest

from sandbox.launcher import Launcher
from tests.unit.redis_server import redis_url
from worker.jobs.languages import load_languages
from worker.jobs.model import CaseResult, GroupResult, JudgeResult, Submission, Verdict
from worker.jobs.packages.format import ProblemError
from worker.jobs.problems import ProblemStore, digest, unpack, unpacked
from worker.jobs.rules import validate
from worker.jobs.store import Store
from worker.problems.uploaded import UploadedProblems

__all__ = ["redis_url"]

DIVISION = Path(__file__).resolve().parents[1] / "problems" / "division"
PY = 71


def zip_dir(directory: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(directory).as_posix())
    return buf.getvalue()


def test_groups_are_in_the_stored_result_only_when_judged_by_a_package() -> None:
    plain = JudgeResult(Verdict.AC, 1.0, 1.0)
    assert "groups" not in plain.to_dict()
    group = GroupResult("secret", Verdict.WA, 30.0, 100.0)
    stored = JudgeResult(Verdict.WA, 30.0, 100.0, groups=(group,)).to_dict()
    assert stored["groups"] == [
        {"name": "secret", "verdict": "WA", "score": 30.0, "max_score": 100.0}
    ]


def test_the_problem_id_field_is_checked_by_the_model() -> None:
    errors = validate(Submission(source_code="x", language_id=PY, problem="abc"))
    assert errors and errors[0].startswith("problem: must be a problem id")


def test_workers_unpack_once_whatever_the_race(tmp_path: Path) -> None:
    data = zip_dir(DIVISION)
    problem = digest(unpack(data, 8 << 20))
    found: list[Path] = []
    threads = [
        threading.Thread(target=lambda: found.append(unpacked(tmp_path, problem, data, 8 << 20)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert found == [tmp_path / problem] * 4
    assert (tmp_path / problem / "problem.yaml").read_bytes() == (
        DIVISION / "problem.yaml"
    ).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [problem]  # no half-made copies left


def test_a_stored_zip_that_is_not_its_digest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProblemError, match="does not match its digest"):
        unpacked(tmp_path, "1" * 64, zip_dir(DIVISION), 8 << 20)


def test_a_worker_ends_an_expired_package_as_ie_naming_the_setting(
    redis_url: str, tmp_path: Path
) -> None:
    store = Store(redis_url, "t:")
    languages = load_languages()
    judge = UploadedProblems(
        cast(Launcher, object()),  # never reached: the package is fetched first
        languages,
        ProblemStore(store.redis, "t:", 60),
        tmp_path,
        8 << 20,
        2048,
        200,
    )
    sub = Submission(source_code="print(1)", language_id=PY, problem="2" * 64)
    result = judge.judge(sub)
    assert result.verdict is Verdict.IE
    assert "STOCKADE_PROBLEM_TTL_S" in result.message


def test_a_cache_others_may_write_is_refused(tmp_path: Path) -> None:
    data = zip_dir(DIVISION)
    problem = digest(unpack(data, 8 << 20))
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # as a /tmp folder someone else made could be
    with pytest.raises(ProblemError, match="STOCKADE_PROBLEM_CACHE_DIR"):
        unpacked(shared, problem, data, 8 << 20)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    with pytest.raises(ProblemError, match="STOCKADE_PROBLEM_CACHE_DIR"):
        unpacked(link, problem, data, 8 << 20)


def test_a_package_judgings_output_is_cut_to_the_operators_budgets(
    redis_url: str, tmp_path: Path
) -> None:
    judge = UploadedProblems(
        cast(Launcher, object()),
        {},
        ProblemStore(Store(redis_url, "t:").redis, "t:", 60),
        tmp_path,
        8 << 20,
        2048,
        200,
        kept_output_per_case=10,
        kept_output_total=15,
    )
    case = CaseResult("secret/a", Verdict.AC, 0.1, 1 << 20, stdout="x" * 100)
    kept = judge._kept(JudgeResult(Verdict.AC, 1.0, 1.0, (case, case)))
    assert [len(c.stdout) for c in kept.cases] == [10, 5]
    assert all(c.truncated for c in kept.cases)
