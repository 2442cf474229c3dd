"""The Piston v2 API takes what Piston takes and answers as Piston answers (engineer-man/piston's
api/src/api/v2.js, job.js, runtime.js), on a real Redis with the worker played by the test."""

from __future__ import annotations

import base64
import io
import threading
import zipfile
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.languages import LanguageInfo, load
from service.piston import find
from service.piston_names import PISTON_NAMES, semver_of
from service.semver import Version
from tests.unit.redis_server import redis_url
from tests.unit.service_app import app, client, ok_result, queued_tokens, settings, store
from worker.jobs.model import Submission
from worker.jobs.store import Store

__all__ = ["app", "client", "redis_url", "settings", "store"]

LANGUAGES = load()
CE_RESULT = {
    "verdict": "CE",
    "score": 0.0,
    "max_score": 0.0,
    "time": 0.0,
    "memory": 0,
    "compile_output": "main.c:1:1: error: expected identifier\n",
    "message": "Compilation error",
    "status": {"id": 6, "description": "Compilation Error"},
    "cases": [],
    "compile": {
        "time": 0.031,
        "wall_time": 0.0425,
        "memory": 7340032,
        "exit_code": 1,
        "status": "RE",
    },
}


def judged(store: Store, result: dict[str, Any], status: int = 3) -> list[Submission]:
    """Plays the worker for the next queued job; the list receives the submission it read."""
    seen: list[Submission] = []
    before = set(queued_tokens(store))

    def run() -> None:
        while not set(queued_tokens(store)) - before:
            pass
        token = next(t for t in queued_tokens(store) if t not in before)
        record = store.start(token)
        assert record is not None
        seen.append(record.submission)
        store.finish(token, status, result)

    threading.Thread(target=run, daemon=True).start()
    return seen


def execute(
    client: FlaskClient, store: Store, body: dict[str, Any], result: dict[str, Any] | None = None
) -> tuple[dict[str, Any], Submission]:
    seen = judged(store, result or ok_result(), 6 if (result or {}).get("verdict") == "CE" else 3)
    r = client.post("/api/v2/execute", json=body)
    assert r.status_code == 200, r.get_json()
    return r.get_json(), seen[0]


def refused(client: FlaskClient, body: dict[str, Any]) -> str:
    r = client.post("/api/v2/execute", json=body)
    assert r.status_code == 400, r.get_json()
    assert set(r.get_json()) == {"message"}  # Piston's error body
    message: str = r.get_json()["message"]
    return message


def py(content: str = "print(1)", **extra: Any) -> dict[str, Any]:
    return {"language": "python", "version": "*", "files": [{"content": content}], **extra}


# --- /runtimes, names and versions ---------------------------------------------------------


def test_runtimes_carry_piston_fields(client: FlaskClient) -> None:
    runtimes = client.get("/api/v2/runtimes").get_json()
    # Judge0's 44 and 89 (a binary source, a zip of scripts) have no Piston form.
    assert len(runtimes) == len(LANGUAGES) - 2
    by_language = {rt["language"]: rt for rt in runtimes}
    for rt in runtimes:
        assert set(rt) <= {"language", "version", "aliases", "runtime"}
        assert Version.parse(rt["version"]) is not None and rt["version"].count(".") == 2
        assert isinstance(rt["aliases"], list)
    # Piston's own entries: a package named apart from the language gives `runtime`.
    assert by_language["javascript"]["runtime"] == "node"
    assert by_language["c"] == {
        "language": "c",
        "version": "12.2.0",
        "aliases": ["gcc"],
        "runtime": "gcc",
    }
    assert by_language["c++"]["runtime"] == "gcc" and "cpp" in by_language["c++"]["aliases"]
    assert "runtime" not in by_language["python"]
    assert by_language["python"]["aliases"] == ["py", "py3", "python3"]
    for name in ("csharp", "kotlin", "haskell", "typescript", "scala", "rscript", "clojure"):
        assert name in by_language, name
    for name in ("elixir", "erlang", "groovy", "lisp", "prolog", "cobol", "d", "sqlite3"):
        assert name in by_language, name
    assert {"nasm64", "objective-c", "octave", "clang", "clang++"} <= set(by_language)


def test_every_served_language_has_a_piston_name_and_none_collide() -> None:
    keys = {lang.key for lang in LANGUAGES.values() if lang.in_piston}
    assert keys <= set(PISTON_NAMES)
    assert {lang.key for lang in LANGUAGES.values() if not lang.in_piston} == {
        "executable",
        "multi",
    }
    owner: dict[str, str] = {}
    for lang in LANGUAGES.values():
        p = lang.piston
        for name in {p.language, *p.aliases}:
            assert owner.setdefault(name, lang.key) == lang.key, (
                f"{name}: {owner[name]}, {lang.key}"
            )


def test_semver_of_display_names() -> None:
    cases = {
        "C (GCC 12.2.0)": "12.2.0",
        "Java (OpenJDK 17.0.15)": "17.0.15",
        "Go (1.19.8)": "1.19.8",
        "Go (1.14)": "1.14.0",
        "Erlang (OTP 25.2.3)": "25.2.3",
        "C# (Mono 6.8.0.105)": "6.8.0",
        "Assembly (NASM 2.16.01)": "2.16.1",
        "Plain Text": "1.0.0",
        "Lua (5)": "5.0.0",
    }
    assert {name: semver_of(name) for name in cases} == cases
    assert all(Version.parse(lang.semver) for lang in LANGUAGES.values())


@pytest.mark.parametrize(
    "selector",
    ["12.2.0", "*", "12", "12.x", "12.2", "^12.1", "~12.2.0", ">=12 <13", "10 - 12.2.0", "x"],
)
def test_version_selectors_resolve_semver_wise(selector: str) -> None:
    assert find("c", selector, LANGUAGES).key == "c"
    assert find("gcc", selector, LANGUAGES).key == "c"


def test_unknown_versions_and_names_are_400_in_pistons_words() -> None:
    cases = (("c", "12.2.1"), ("c", "13"), ("c", "not a range"), ("swift", "*"), ("multi", "*"))
    for language, version in (*cases, ("executable", "*")):
        with pytest.raises(Exception) as e:
            find(language, version, LANGUAGES)
        assert getattr(e.value, "body", None) == {
            "message": f"{language}-{version} runtime is unknown"
        }
    # Names are Piston's, exact; clang's C has its own (under "c" it would outrank GCC's).
    assert find("clang", "*", LANGUAGES).key == "c_clang"
    assert find("c++", "*", LANGUAGES).key == "cpp"
    assert find("clang++", "14", LANGUAGES).key == "cpp_clang"
    assert find("js", "20", LANGUAGES).key == "javascript"
    assert find("python3", "3.11.x", LANGUAGES).key == "python3"  # Stockade's key is one too


def test_highest_matching_version_wins() -> None:
    older = {**LANGUAGES, 9001: _twin(LANGUAGES[71], "Python (3.9.18)", 9001)}
    assert find("python", "*", older).id == 71
    assert find("python", "3.9", older).id == 9001
    newer = {**LANGUAGES, 9002: _twin(LANGUAGES[71], "Python (3.12.1)", 9002)}
    assert find("py", "3", newer).id == 9002


def _twin(lang: LanguageInfo, name: str, id: int) -> LanguageInfo:
    return LanguageInfo(id, lang.key, name, lang.source_file, lang.compile_cmd, lang.run_cmd)


# --- /execute: the answer ------------------------------------------------------------------


def test_compile_error_copies_compile_into_run(client: FlaskClient, store: Store) -> None:
    body = {"language": "c", "version": "*", "files": [{"content": "int main( {"}]}
    out, _ = execute(client, store, body, CE_RESULT)
    assert out["language"] == "c" and out["version"] == "12.2.0"
    compile = out["compile"]
    assert compile["code"] == 1 and compile["signal"] is None and compile["status"] == "RE"
    assert compile["stderr"] == compile["output"] == CE_RESULT["compile_output"]
    assert (compile["cpu_time"], compile["wall_time"], compile["memory"]) == (31.0, 42.5, 7340032)
    assert out["run"] == compile


def test_stages_carry_times_in_ms_and_memory_in_bytes(client: FlaskClient, store: Store) -> None:
    result = ok_result("3\n")
    result["cases"][0]["wall_time"] = 0.0305
    result["compile"] = {"time": 0.2, "wall_time": 0.25, "memory": 50 << 20, "exit_code": 0}
    body = {"language": "c++", "version": "12", "files": [{"content": "int main(){}"}]}
    out, _ = execute(client, store, body, result)
    run = out["run"]
    assert (run["cpu_time"], run["wall_time"], run["memory"]) == (12.0, 30.5, 9 * 1024 * 1024)
    assert run["stdout"] == run["output"] == "3\n" and run["code"] == 0 and run["signal"] is None
    assert out["compile"]["code"] == 0 and out["compile"]["wall_time"] == 250.0


def test_time_limit_is_sigkill_as_pistons_isolate_says(client: FlaskClient, store: Store) -> None:
    result = ok_result("", verdict="TLE", status=5)
    result["cases"][0].update(exit_code=None, signal=9, message="Time limit exceeded")
    out, _ = execute(client, store, py("while True: pass"), result)
    assert (out["run"]["status"], out["run"]["signal"], out["run"]["code"]) == (
        "TO",
        "SIGKILL",
        None,
    )


# --- /execute: files -----------------------------------------------------------------------


def test_files_keep_their_names_and_encodings(client: FlaskClient, store: Store) -> None:
    files = [
        {"name": "data.bin", "content": "00ff41", "encoding": "hex"},
        {"name": "Solution.java", "content": "class Solution {}"},
        {"name": "lib/Helper.java", "content": "class Helper {}", "encoding": "utf8"},
        {"name": "blob", "content": base64.b64encode(b"\x01\x02").decode(), "encoding": "base64"},
    ]
    _, sub = execute(client, store, {"language": "java", "version": "17", "files": files})
    assert sub.source_code == "class Solution {}" and sub.source_name == "Solution.java"
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(sub.additional_files))) as z:
        extra = {n: z.read(n) for n in z.namelist()}
    assert extra == {
        "data.bin": b"\x00\xffA",
        "lib/Helper.java": b"class Helper {}",
        "blob": b"\x01\x02",
    }


def test_a_name_the_toolchain_cannot_take_keeps_the_languages(
    client: FlaskClient, store: Store
) -> None:
    for name, kept in (
        ("main", ""),
        ("file0.code", ""),
        ("my code.py", ""),
        ("src/app.py", "src/app.py"),
    ):
        _, sub = execute(client, store, py(files=[{"name": name, "content": "print(1)"}]))
        assert sub.source_name == kept, name


def test_absolute_names_are_relative_as_in_piston(client: FlaskClient, store: Store) -> None:
    files = [{"name": "/main.py", "content": "x"}, {"name": "/etc/passwd", "content": "y"}]
    _, sub = execute(client, store, py(files=files))
    assert sub.source_name == "main.py"
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(sub.additional_files))) as z:
        assert z.namelist() == ["etc/passwd"]


def test_file_refusals_name_the_file(client: FlaskClient) -> None:
    ok = {"name": "main.py", "content": "print(1)"}
    cases = [
        (
            [ok, {"name": "../x", "content": ""}],
            'files[1].name: "../x" tries to escape the submission directory',
        ),
        (
            [{"name": "a/../../x.py", "content": ""}],
            'files[0].name: "a/../../x.py" tries to escape',
        ),
        (
            [ok, {"name": "main.py", "content": ""}],
            'files[1].name: "main.py" is the name of an earlier file',
        ),
        (
            [ok, {"name": "b", "content": "zz", "encoding": "hex"}],
            "files[1].content: not valid hex",
        ),
        (
            [ok, {"name": "b", "content": "@@@", "encoding": "base64"}],
            "files[1].content: not valid base64",
        ),
        (
            [{"content": "AA==", "encoding": "base64"}],
            "files must include at least one utf8 encoded file",
        ),
        ([ok, {"name": "c"}], "files[1].content is required as a string"),
        (
            [{"name": "x.txt", "content": "a"}, {"name": "script.py", "content": "b"}],
            'files: "script.py" is also the name',
        ),
    ]
    for files, message in cases:
        assert refused(client, py(files=files)).startswith(message), message
    assert (
        refused(client, {"language": "python", "version": "*"}) == "files is required as an array"
    )
    assert refused(client, {"version": "*", "files": []}) == "language is required as a string"
    assert refused(client, {**py(), "version": 3}) == "version is required as a string"


def test_first_utf8_file_is_the_program_and_stdin_ends_in_a_newline(
    client: FlaskClient, store: Store
) -> None:
    files = [
        {"name": "d", "content": "41", "encoding": "hex"},
        {"name": "m.py", "content": "input()"},
    ]
    _, sub = execute(client, store, py(files=files, stdin="hi", args=["a b", "c"]))
    assert (sub.source_code, sub.source_name, sub.stdin) == ("input()", "m.py", "hi\n")
    assert sub.command_line_arguments == "'a b' c"
    _, sub = execute(client, store, py(stdin="x\n"))
    assert sub.stdin == "x\n"


# --- /execute: limits ----------------------------------------------------------------------


def test_limits_reach_the_submission(client: FlaskClient, store: Store) -> None:
    body = {
        "language": "c",
        "version": "*",
        "files": [{"content": "int main(){}"}],
        "run_timeout": 2500,
        "run_cpu_time": 1500,
        "run_memory_limit": 64 << 20,
        "compile_timeout": 9000,
        "compile_cpu_time": 4000,
        "compile_memory_limit": 200 << 20,
    }
    _, sub = execute(client, store, body)
    assert (sub.wall_time_limit, sub.cpu_time_limit, sub.cpu_extra_time) == (2.5, 1.5, 0)
    assert sub.memory_limit == 64 * 1024
    assert (sub.compile_wall_time_limit, sub.compile_cpu_time_limit) == (9.0, 4.0)
    assert sub.compile_memory_limit == 200 * 1024
    # -1 is the configured limit for a memory limit; 0 keeps the default, as Piston skips it.
    body.update(run_memory_limit=-1, compile_memory_limit=-1, run_timeout=0, compile_timeout=0)
    _, sub = execute(client, store, body)
    assert sub.memory_limit == 512000 and sub.compile_memory_limit == 512 * 1024
    assert sub.wall_time_limit == 10.0 and sub.compile_wall_time_limit == 0


def test_limit_refusals_in_pistons_words(client: FlaskClient) -> None:
    c = {"language": "c", "version": "*", "files": [{"content": "int main(){}"}]}
    cases = [
        ({"compile_timeout": 20001}, "compile_timeout cannot exceed the configured limit of 20000"),
        (
            {"compile_cpu_time": 10001},
            "compile_cpu_time cannot exceed the configured limit of 10000",
        ),
        (
            {"compile_memory_limit": 1 << 40},
            "compile_memory_limit cannot exceed the configured limit of 536870912",
        ),
        ({"run_timeout": 20001}, "run_timeout cannot exceed the configured limit of 20000"),
        ({"run_cpu_time": 15001}, "run_cpu_time cannot exceed the configured limit of 15000"),
        (
            {"run_memory_limit": 1 << 40},
            "run_memory_limit cannot exceed the configured limit of 524288000",
        ),
        ({"run_timeout": -5}, "run_timeout must be non-negative"),
        ({"compile_timeout": -1}, "compile_timeout must be non-negative"),
        ({"run_cpu_time": "3000"}, "If specified, run_cpu_time must be a number"),
        ({"compile_memory_limit": [1]}, "If specified, compile_memory_limit must be a number"),
        # Stockade's own floor (a box needs 4 MiB), named as the native API names it.
        (
            {"compile_memory_limit": 1000},
            "compile_memory_limit: must be 0 (the language's own) or at least 4096",
        ),
    ]
    for extra, message in cases:
        assert refused(client, {**c, **extra}) == message


def test_a_compile_killed_at_its_time_limit_is_to(client: FlaskClient, store: Store) -> None:
    result = {**CE_RESULT, "compile_output": "Time limit exceeded"}
    result["compile"] = {"time": 0.02, "wall_time": 0.03, "memory": 1 << 20, "exit_code": None,
                         "signal": 9, "status": "TO"}  # fmt: skip
    body = {"language": "c++", "version": "*", "files": [{"content": "int main(){}"}]}
    out, _ = execute(client, store, body, result)
    compile = out["compile"]
    assert (compile["status"], compile["signal"], compile["code"]) == ("TO", "SIGKILL", None)
    assert out["run"] == compile
