"""Piston compatibility: GET /api/v2/runtimes and POST /api/v2/execute."""

from __future__ import annotations

from typing import Any

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


def execute(api: httpx.Client, **body: object) -> dict[str, Any]:
    r = api.post("/api/v2/execute", json={"version": "*", **body})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_java_runs_under_the_files_own_name(api: httpx.Client) -> None:
    """Piston runs {"name": "Solution.java"} with a public class Solution; so does Stockade."""
    source = "public class Solution { public static void main(String[] a) {"
    source += ' System.out.println("sol " + a.length); } }'
    out = execute(
        api, language="java", files=[{"name": "Solution.java", "content": source}], args=["x"]
    )
    assert out["compile"]["code"] == 0, out
    assert out["run"]["stdout"] == "sol 1\n" and out["version"] == "17.0.15"


def test_compile_error_run_is_compile_with_usage(api: httpx.Client) -> None:
    out = execute(api, language="c", files=[{"name": "main.c", "content": "int main( {"}])
    compile = out["compile"]
    assert compile["code"] not in (0, None) and "error" in compile["stderr"]
    assert out["run"] == compile
    assert compile["cpu_time"] > 0 and compile["wall_time"] > 0 and compile["memory"] > 0


def test_stage_usage_and_files_in_every_encoding(api: httpx.Client) -> None:
    program = "import os\nfor n in ('d/a.bin', 'b.bin'):\n    print(open(n, 'rb').read())"
    files = [
        {"name": "main.py", "content": program},
        {"name": "d/a.bin", "content": "00ff", "encoding": "hex"},
        {"name": "b.bin", "content": "aGk=", "encoding": "base64"},
    ]
    run = execute(api, language="py", version="3.x", files=files)["run"]
    assert run["stdout"] == "b'\\x00\\xff'\nb'hi'\n", run
    assert run["cpu_time"] > 0 and run["wall_time"] >= run["cpu_time"] / 2 and run["memory"] > 0


def test_compile_limits_reach_the_compile_box(api: httpx.Client) -> None:
    """20 ms of CPU is far too little for g++ on <iostream>: the compile box is killed, where
    the language's own limit builds it."""
    source = "#include <iostream>\nint main(){std::cout<<42<<std::endl;}\n"
    files = [{"name": "main.cpp", "content": source}]
    assert execute(api, language="c++", files=files)["run"]["stdout"] == "42\n"
    out = execute(api, language="c++", files=files, compile_cpu_time=20)
    assert out["compile"]["status"] == "TO" and out["compile"]["signal"] == "SIGKILL", out
    assert out["run"] == out["compile"]
    assert out["compile"]["cpu_time"] < 1000


def test_traversal_and_over_limit_are_400(api: httpx.Client) -> None:
    r = api.post(
        "/api/v2/execute",
        json={"language": "python", "version": "*", "files": [{"name": "../x.py", "content": ""}]},
    )
    assert r.status_code == 400 and r.json()["message"].startswith('files[0].name: "../x.py"')
    r = api.post(
        "/api/v2/execute",
        json={"language": "c", "version": "*", "files": [{"content": ""}], "run_timeout": 10**6},
    )
    assert r.json() == {"message": "run_timeout cannot exceed the configured limit of 20000"}
