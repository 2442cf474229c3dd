"""A problem package uploaded through the native API and judged by id on the real stack: an
accepted and a wrong-answer solution, their verdicts, group scores and per-case details."""

from __future__ import annotations

import base64
import io
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import PYTHON

DIVISION = Path(__file__).resolve().parents[1] / "problems" / "division"


def zip_package(directory: Path) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory)
            if path.is_file() and rel.parts[0] != "submissions":
                zf.write(path, rel.as_posix())
    return base64.b64encode(buf.getvalue()).decode()


def judged(api: httpx.Client, token: str, timeout_s: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = api.get(f"/api/v1/submissions/{token}").json()
        if body["final"]:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def test_a_package_uploaded_once_judges_submissions_by_id(api: httpx.Client) -> None:
    r = api.post("/api/v1/problems", json={"package": zip_package(DIVISION)})
    assert r.status_code in (200, 201), r.text
    problem = r.json()["id"]
    try:
        tokens = {}
        for name in ("accepted/div.py", "wrong_answer/partial.py"):
            source = (DIVISION / "submissions" / name).read_text()
            sub = {"source_code": source, "language_id": PYTHON, "problem": problem}
            created = api.post("/api/v1/submissions", json=sub)
            assert created.status_code == 201, created.text
            tokens[name] = created.json()["id"]

        ac = judged(api, tokens["accepted/div.py"])
        assert ac["verdict"] == "AC", ac
        assert (ac["score"], ac["max_score"]) == (100, 100)
        names = [c["name"] for c in ac["cases"]]
        assert names == [
            "sample/1",
            "secret/g1/a",
            "secret/g1/b",
            "secret/g2/c",
            "secret/g2/d",
            "secret/g2/e",
        ]
        for case in ac["cases"]:
            assert case["verdict"] == "AC" and case["time"] >= 0 and case["memory"] > 0
            assert "message" in case
        groups = {g["name"]: g for g in ac["groups"]}
        assert groups["secret/g1"]["score"] == 30 and groups["secret/g2"]["score"] == 70
        assert groups["secret"]["max_score"] == 100

        wa = judged(api, tokens["wrong_answer/partial.py"])
        assert wa["verdict"] == "WA", wa
        assert wa["score"] == 30
        groups = {g["name"]: g for g in wa["groups"]}
        assert (groups["secret/g1"]["verdict"], groups["secret/g1"]["score"]) == ("AC", 30)
        assert (groups["secret/g2"]["verdict"], groups["secret/g2"]["score"]) == ("WA", 0)
        rejected = [c for c in wa["cases"] if c["verdict"] == "WA"]
        assert rejected and all(c["name"].startswith("secret/g2/") for c in rejected)
        assert all(c["message"] for c in rejected)  # the validator says why
    finally:
        # The worker's default cache; the suite leaves nothing of its own behind.
        shutil.rmtree(Path(tempfile.gettempdir()) / "stockade-problems" / problem, True)
