"""API fuzzing: schemathesis against /openapi.json through the WSGI app (no network), and
hypothesis bodies for the Judge0 and Piston APIs the document does not describe. On a real
Redis with no worker. Checks: no 5xx, and every answer conforms to the document."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import schemathesis
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from service import create_app
from service.config import Config

EXAMPLES = 40  # per operation: 7 operations, the file runs in well under a minute
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


# The schema is loaded from the app when this module is imported (schemathesis' fixture loader
# does not work with this pytest): the app is built now on a socket path, and the module's
# Redis starts on that path before the first request (redis-py connects lazily).
_TMP = Path(tempfile.mkdtemp(prefix="stockade-fuzz-"))
_SOCK = _TMP / "redis.sock"
# No worker drains the queue: a cap it could reach would answer a (correct) 503, and wait=true
# would sit out its timeout on every example.
APP = create_app(
    Config().replace(
        redis_url=f"unix://{_SOCK}", redis_prefix="f:", wait_timeout_s=0.01, max_queue_depth=10**9
    )
)
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@pytest.fixture(scope="module", autouse=True)
def module_redis() -> Iterator[None]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("needs redis-server (apt-get install redis-server)")
    argv = [server, "--port", "0", "--unixsocket", str(_SOCK), "--unixsocketperm", "700",
            "--save", "", "--appendonly", "no", "--dir", str(_TMP)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if _SOCK.exists() and redis.Redis.from_url(f"unix://{_SOCK}").ping():
                    break
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("redis-server did not start")
            time.sleep(0.01)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(_TMP, ignore_errors=True)


@schema.parametrize()
@HYPOTHESIS
def test_native_api_conforms(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


# --- The Judge0 and Piston APIs: no document, the same rule (never a 5xx, always JSON) --------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
JUDGE0_FIELDS = [
    "source_code", "language_id", "stdin", "expected_output", "cpu_time_limit",
    "cpu_extra_time", "wall_time_limit", "memory_limit", "stack_limit",
    "max_processes_and_or_threads", "max_file_size", "number_of_runs", "enable_network",
    "command_line_arguments", "compiler_options", "additional_files",
    "redirect_stderr_to_stdout", "callback_url", "test_cases", "checker", "interactor",
    "enable_per_process_and_thread_time_limit",
]  # fmt: skip
judge0_bodies = st.fixed_dictionaries(
    {"source_code": st.text(max_size=20), "language_id": st.sampled_from([71, 50, 54, 63, 0])},
    optional={name: values for name in JUDGE0_FIELDS[2:]},
)
piston_bodies = st.fixed_dictionaries(
    {"language": st.sampled_from(["python", "c", "bash", "", "cobol"]) | values},
    optional={
        "version": st.sampled_from(["*", "3", ""]) | values,
        "files": st.lists(
            st.fixed_dictionaries(
                {"content": st.text(max_size=10) | values},
                optional={"name": st.text(max_size=8), "encoding": st.just("base64") | values},
            ),
            max_size=3,
        )
        | values,
        "stdin": values,
        "args": st.lists(st.text(max_size=5), max_size=2) | values,
        "run_timeout": values,
        "run_memory_limit": values,
    },
)
flags = st.fixed_dictionaries(
    {},
    optional={
        "base64_encoded": st.sampled_from(["true", "false", "x"]),
        "wait": st.just("true"),
        "fields": st.sampled_from(["*", "token,status", "nope", ""]),
    },
)


@pytest.fixture
def client() -> FlaskClient:
    return APP.test_client()


def answered(r: Any) -> None:
    assert r.status_code < 500, r.get_data()[:500]
    if r.status_code != 200 or r.get_data():
        json.loads(r.get_data())  # every answer with a body is JSON


@HYPOTHESIS
@given(body=judge0_bodies | values, query=flags)
def test_judge0_create_never_5xx(client: FlaskClient, body: Any, query: dict[str, str]) -> None:
    answered(client.post("/submissions", json=body, query_string=query))


@HYPOTHESIS
@given(items=st.lists(judge0_bodies | values, max_size=4) | values, query=flags)
def test_judge0_batch_never_5xx(client: FlaskClient, items: Any, query: dict[str, str]) -> None:
    answered(client.post("/submissions/batch", json={"submissions": items}, query_string=query))


@HYPOTHESIS
@given(body=piston_bodies | values)
def test_piston_execute_never_5xx(client: FlaskClient, body: Any) -> None:
    # A valid program waits for a worker that is not there (the wait timeout is 10 ms) and
    # gets Piston's documented 504 with the token; everything else must be answered below 500.
    r = client.post("/api/v2/execute", json=body)
    if r.status_code == 504:
        assert r.get_json()["message"].startswith("no result within the wait timeout; token ")
        return
    answered(r)


@HYPOTHESIS
@given(
    path=st.sampled_from(["/submissions/", "/api/v1/submissions/", "/languages/"]),
    tail=st.text(st.characters(codec="utf-8", exclude_characters="/?#"), max_size=20),
    query=flags | st.dictionaries(st.sampled_from(["page", "per_page", "tokens", "ids"]),
                                  st.text(max_size=8)),
)  # fmt: skip
def test_reads_never_5xx(client: FlaskClient, path: str, tail: str, query: dict[str, str]) -> None:
    answered(client.get(path + tail, query_string=query))
    answered(client.get(path.rstrip("/") + "/batch", query_string=query))
