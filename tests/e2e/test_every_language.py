"""Every language a client can pick, used as a client uses it: for each served Judge0 id
(the aliases 48/49/52/53, 44 with a real ELF binary and 89 with a zip too), a program that
reads stdin and writes stdout, sent through the Judge0 API with base64_encoded=true and
without, and through Piston's /api/v2/execute. Everything is queued at once (Judge0 batches,
Piston calls from threads), so the stack's two workers judge them side by side; the wall
time is printed. Also output that is not UTF-8, byte for byte."""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service import languages as service_languages
from service.judge0_view import NOT_UTF8
from service.languages import JUDGE0_ALIASES
from tests.e2e.conftest import Stack
from worker.jobs.languages import Language, load_languages
from worker.selftest import zipped

LANGUAGES = load_languages()
SERVICE_LANGUAGES = service_languages.load()
MULTI_FILE, EXECUTABLE, PLAIN_TEXT = 89, 44, 43
# Not the self-tests' stdin ("2 3"): the answer shows that this input reached the program.
STDIN = "4 2\n"
BATCH = 20  # Judge0's max_submission_batch_size, the stack's default
POLL_S = 240.0
ELF_SOURCE = Path(shutil.which("cat") or "/bin/cat")  # a real binary that reads stdin


@dataclass(frozen=True)
class Program:
    """One submission a client makes: its Judge0 body (plain text) and its expected stdout."""

    label: str
    body: dict[str, Any]
    expected: str
    binary: bytes = b""  # a source that is bytes, not text (language 44 with base64 only)


def expected_stdout(lang: Language) -> str:
    if lang.id == PLAIN_TEXT:
        return lang.self_test.source  # Plain Text prints its own text, as Judge0's cat does
    a, b = (int(x) for x in STDIN.split())
    return f"hello, world\n{a + b}\n"


def program(lang: Language, judge0_id: int) -> Program:
    """The language's own self-test program, as a client sends it, on this test's stdin."""
    test = lang.self_test
    body: dict[str, Any] = {"language_id": judge0_id, "stdin": STDIN}
    if test.files:
        body["additional_files"] = zipped(test.files)
    else:
        body["source_code"] = test.source
    return Program(f"{judge0_id}-{lang.key}", body, expected_stdout(lang))


def judge0_programs() -> list[Program]:
    out = [program(lang, i) for i, lang in sorted(LANGUAGES.items())]
    out += [program(LANGUAGES[target], alias) for alias, target in JUDGE0_ALIASES.items()]
    return out


def elf_program() -> Program:
    body = {"language_id": EXECUTABLE, "stdin": STDIN}
    return Program("44-elf", body, STDIN, binary=ELF_SOURCE.read_bytes())


def encoded(p: Program) -> dict[str, Any]:
    """The body with base64_encoded=true: every text field in base64, the binary as it is."""
    body = dict(p.body)
    for name in ("source_code", "stdin"):
        if name in body:
            body[name] = base64.b64encode(body[name].encode()).decode()
    if p.binary:
        body["source_code"] = base64.b64encode(p.binary).decode()
    return body


def submit(api: httpx.Client, bodies: list[dict[str, Any]], b64: bool) -> list[str]:
    tokens: list[str] = []
    for start in range(0, len(bodies), BATCH):
        r = api.post(
            f"/submissions/batch?base64_encoded={str(b64).lower()}",
            json={"submissions": bodies[start : start + BATCH]},
        )
        assert r.status_code == 201, r.text
        answers = r.json()
        assert all("token" in a for a in answers), answers
        tokens += [a["token"] for a in answers]
    return tokens


def poll(api: httpx.Client, tokens: list[str], b64: bool) -> list[dict[str, Any]]:
    fields = "token,stdout,stderr,compile_output,message,status"
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + POLL_S
    while len(done) < len(tokens) and time.monotonic() < deadline:
        waiting = [t for t in tokens if t not in done]
        for start in range(0, len(waiting), BATCH):
            chunk = ",".join(waiting[start : start + BATCH])
            r = api.get(
                f"/submissions/batch?tokens={chunk}&fields={fields}"
                f"&base64_encoded={str(b64).lower()}"
            )
            assert r.status_code == 200, r.text
            for sub in r.json()["submissions"]:
                if sub["status"]["id"] > 2:
                    done[sub["token"]] = sub
        time.sleep(0.5)
    return [done.get(t, {"status": {"id": 2, "description": "still running"}}) for t in tokens]


def piston_name(lang: Language) -> str:
    """The language's Piston name as /api/v2/runtimes lists it (the service's own table)."""
    return SERVICE_LANGUAGES[lang.id].piston.language


def piston_run(api: httpx.Client, lang: Language) -> dict[str, Any]:
    body = {
        "language": piston_name(lang),
        "version": "*",
        "files": [{"name": lang.source_file, "content": lang.self_test.source}],
        "stdin": STDIN,
    }
    r = api.post("/api/v2/execute", json=body)
    return {"code": r.status_code, "body": r.json() if r.content else None}


@dataclass
class Outcomes:
    plain: dict[str, dict[str, Any]]
    b64: dict[str, dict[str, Any]]
    piston: dict[str, dict[str, Any]]
    programs: dict[str, Program]
    wall_s: float


# Piston has no form for Judge0's 89 (a zip of scripts) nor 44 (a binary as the source), so
# those are reached through the Judge0 API alone; aliases are Judge0 ids, not Piston runtimes.
PISTON_LANGUAGES = [lang for i, lang in sorted(LANGUAGES.items()) if SERVICE_LANGUAGES[i].in_piston]


@pytest.fixture(scope="module")
def outcomes(stack: Stack) -> Iterator[Outcomes]:
    # An API of its own whose Piston calls wait as long as the whole queue may take.
    url = stack.start_api("api-every-language", STOCKADE_WAIT_TIMEOUT_S=str(POLL_S))
    programs = judge0_programs()
    elf = elf_program()
    start = time.monotonic()
    with httpx.Client(base_url=url, timeout=POLL_S + 30) as api:
        b64_tokens = submit(api, [encoded(p) for p in [*programs, elf]], b64=True)
        plain_tokens = submit(api, [p.body for p in programs], b64=False)
        with ThreadPoolExecutor(max_workers=12) as pool:
            futures = {lang.key: pool.submit(piston_run, api, lang) for lang in PISTON_LANGUAGES}
            b64_answers = poll(api, b64_tokens, b64=True)
            plain_answers = poll(api, plain_tokens, b64=False)
            piston = {key: f.result() for key, f in futures.items()}
    wall = time.monotonic() - start
    n = len(b64_tokens) + len(plain_tokens) + len(piston)
    print(f"\nevery language: {n} programs judged in {wall:.1f}s of wall time")
    yield Outcomes(
        plain=dict(zip([p.label for p in programs], plain_answers, strict=True)),
        b64=dict(zip([p.label for p in [*programs, elf]], b64_answers, strict=True)),
        piston=piston,
        programs={p.label: p for p in [*programs, elf]},
        wall_s=wall,
    )


LABELS = [p.label for p in judge0_programs()]


def describe(answer: dict[str, Any]) -> str:
    return str({k: answer.get(k) for k in ("status", "compile_output", "message", "stderr")})


@pytest.mark.parametrize("label", LABELS)
def test_judge0_without_base64(outcomes: Outcomes, label: str) -> None:
    answer = outcomes.plain[label]
    assert answer["status"]["id"] == 3, describe(answer)
    assert answer["stdout"] == outcomes.programs[label].expected


@pytest.mark.parametrize("label", [*LABELS, "44-elf"])
def test_judge0_with_base64(outcomes: Outcomes, label: str) -> None:
    answer = outcomes.b64[label]
    assert answer["status"]["id"] == 3, describe(answer)
    stdout = base64.b64decode(answer["stdout"]).decode()
    assert stdout == outcomes.programs[label].expected


@pytest.mark.parametrize("key", [lang.key for lang in PISTON_LANGUAGES])
def test_piston_execute(outcomes: Outcomes, key: str) -> None:
    got = outcomes.piston[key]
    assert got["code"] == 200, got
    lang = next(lang for lang in PISTON_LANGUAGES if lang.key == key)
    run = got["body"]["run"]
    assert run["stdout"] == expected_stdout(lang) and run["code"] == 0, got["body"]


def test_every_served_id_is_listed(outcomes: Outcomes, api: httpx.Client) -> None:
    listed = {lang["id"] for lang in api.get("/languages").json()}
    assert listed == set(LANGUAGES) | set(JUDGE0_ALIASES)
    assert len(listed) >= 42
    assert outcomes.wall_s < 240, f"{outcomes.wall_s:.0f}s for every language"


BYTES = bytes(range(256))
NOT_TEXT = (
    "import sys\n"
    "sys.stdout.buffer.write(bytes(range(256)))\n"
    "sys.stderr.buffer.write(b'\\xff\\xfe')\n"
)


def test_output_that_is_not_utf8_is_exact_in_base64_and_an_error_without(
    api: httpx.Client,
) -> None:
    body = {"source_code": base64.b64encode(NOT_TEXT.encode()).decode(), "language_id": 71}
    r = api.post("/submissions?base64_encoded=true&wait=true", json=body)
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["status"]["id"] == 3, answer
    assert base64.b64decode(answer["stdout"]) == BYTES
    assert base64.b64decode(answer["stderr"]) == b"\xff\xfe"
    # Without base64, Judge0's own answer: the token and why, 201 on a create with wait.
    r = api.post("/submissions?wait=true", json={**body, "source_code": NOT_TEXT})
    assert r.status_code == 201 and r.json()["error"] == NOT_UTF8
    token = r.json()["token"]
    r = api.get(f"/submissions/{token}")
    assert r.status_code == 400 and r.json() == {"error": NOT_UTF8}
    r = api.get(f"/submissions/{token}?base64_encoded=true&fields=stdout")
    assert base64.b64decode(r.json()["stdout"]) == BYTES
