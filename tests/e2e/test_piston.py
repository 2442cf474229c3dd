"""Piston compatibility: GET /api/v2/runtimes and POST /api/v2/execute."""

from __future__ import annotations

import httpx


def test_runtimes(api: httpx.Client) -> None:
    runtimes = api.get("/api/v2/runtimes").json()
    python = [r for r in runtimes if r["language"] == "python"]
    assert python and {"language", "version", "aliases"} <= set(python[0])


def test_execute_python(api: httpx.Client) -> None:
    r = api.post(
        "/api/v2/execute",
        json={
            "language": "python",
            "version": "*",
            "files": [{"name": "main.py", "content": "import sys\nprint(sys.argv[1:], input())"}],
            "stdin": "hi",
            "args": ["a", "b"],
        },
    )
    assert r.status_code == 200, r.text
    run = r.json()["run"]
    assert run["stdout"] == "['a', 'b'] hi\n" and run["code"] == 0 and run["signal"] is None
    assert run["output"] == run["stdout"]


def test_execute_cpp_compile_stage(api: httpx.Client) -> None:
    r = api.post(
        "/api/v2/execute",
        json={"language": "c++", "version": "*", "files": [{"content": "int main( {"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["compile"]["code"] != 0


def test_execute_unknown_language_is_400(api: httpx.Client) -> None:
    r = api.post("/api/v2/execute", json={"language": "cobol-9000", "version": "*", "files": []})
    assert r.status_code == 400 and "runtime is unknown" in r.text
