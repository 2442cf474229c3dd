"""What Judge0 CE 1.13.1 takes and how it answers, against the Judge0 API on a real Redis with
Flask's test client (no worker: results are stored as a worker stores them)."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from typing import Any

import pytest
from flask.testing import FlaskClient

from service import create_app
from service.config import Config
from tests.unit.redis_server import redis_url
from tests.unit.service_app import HELLO, app, client, ok_result, settings, store
from worker.jobs.store import Store

__all__ = ["app", "client", "redis_url", "settings", "store"]

TOKEN = "tok-1"
ADMIN = "adm-1"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def authed(redis_url: str, **overrides: Any) -> FlaskClient:
    """Auth on: crosssite steps aside (a page cannot send a token it lacks), as Judge0 with
    AUTHN_TOKEN set; form bodies and cross-origin calls are then Judge0's."""
    config = Config(
        redis_url=redis_url,
        redis_prefix="t:",
        auth_tokens=(TOKEN,),
        authz_tokens=(ADMIN,),
        wait_timeout_s=0.3,
    ).replace(**overrides)
    return create_app(config).test_client()


def created(store: Store, r: Any) -> Any:
    assert r.status_code == 201, r.get_json()
    rec = store.get(r.get_json()["token"])
    assert rec is not None
    return rec.submission


# --- Requests ---------------------------------------------------------------------------------


def test_numbers_and_booleans_sent_as_text_are_cast_as_rails_does(
    client: FlaskClient, store: Store
) -> None:
    body = {
        "source_code": "print(1)", "language_id": "71", "cpu_time_limit": "2.5",
        "memory_limit": "65536", "wall_time_limit": " 5 ", "number_of_runs": "2",
        "redirect_stderr_to_stdout": "true", "enable_network": "false", "stack_limit": "",
        "max_file_size": 100.0,
    }  # fmt: skip
    sub = created(store, client.post("/submissions", json=body))
    assert sub.language_id == 71 and sub.cpu_time_limit == 2.5 and sub.memory_limit == 65536
    assert sub.wall_time_limit == 5.0 and sub.number_of_runs == 2
    assert sub.redirect_stderr_to_stdout is True and sub.enable_network is False
    assert sub.stack_limit == 64000  # "" is unset: Judge0's default
    assert isinstance(sub.max_file_size, int) and sub.max_file_size == 100
    # A number where text is expected is its text, as in a Rails text column.
    sub = created(store, client.post("/submissions", json={"source_code": 42, "language_id": 71}))
    assert sub.source_code == "42"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("language_id", "python"),
        ("cpu_time_limit", "fast"),
        ("memory_limit", "lots"),
        ("memory_limit", "nan"),
        ("redirect_stderr_to_stdout", "maybe"),
        ("enable_network", [True]),
    ],
)
def test_garbage_text_is_still_422_naming_the_field(
    client: FlaskClient, field: str, value: Any
) -> None:
    r = client.post("/submissions", json={**HELLO, field: value})
    assert r.status_code == 422 and field in r.get_json(), r.get_json()


def test_every_broken_rule_is_in_one_answer(client: FlaskClient) -> None:
    """Rails reports each invalid attribute at once; so does this API."""
    body = {"source_code": "", "language_id": 71, "memory_limit": "x", "cpu_time_limit": 99}
    r = client.post("/submissions", json=body)
    errors = r.get_json()
    assert r.status_code == 422
    assert errors["source_code"] == ["can't be blank"]
    assert set(errors) == {"source_code", "memory_limit", "cpu_time_limit"}, errors


def test_form_bodies_and_the_query_string_carry_attributes(redis_url: str, store: Store) -> None:
    api, h = authed(redis_url), {"X-Auth-Token": TOKEN}
    form = {"source_code": "print(2)", "language_id": "71", "cpu_time_limit": "1"}
    sub = created(store, api.post("/submissions", data=form, headers=h))
    assert (sub.source_code, sub.language_id, sub.cpu_time_limit) == ("print(2)", 71, 1.0)
    multipart = {**form, "stdin": (io.BytesIO(b"ignored"), "f.txt"), "memory_limit": "9000"}
    sub = created(store, api.post("/submissions", data=multipart, headers=h))
    assert sub.memory_limit == 9000 and sub.stdin == ""  # a file part is no attribute
    r = api.post("/submissions?source_code=print(3)&language_id=71&stdin=x", headers=h)
    sub = created(store, r)
    assert (sub.source_code, sub.stdin) == ("print(3)", "x")
    # The query string wins over the body, as in Rails' params.
    r = api.post("/submissions?language_id=71&stdin=q", json={**HELLO, "stdin": "b"}, headers=h)
    assert created(store, r).stdin == "q"
    # A multipart field as large as the source cap (Flask's own default is 500 kB).
    big = {**form, "source_code": "#" * 900_000 + "\nprint(1)"}
    assert len(created(store, api.post("/submissions", data={**big, "f": (io.BytesIO(b""), "x")},
                                       headers=h)).source_code) == 900_009  # fmt: skip
    # `curl -d '{...}'` without a Content-Type sends JSON labelled as a form.
    r = api.post("/submissions", data=json.dumps(HELLO), headers={
        **h, "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert created(store, r).source_code == HELLO["source_code"]
    # Switches may come in a form too.
    r = api.post("/submissions", data={**form, "source_code": b64("x=1"), "base64_encoded": "true"},
                 headers=h)  # fmt: skip
    assert created(store, r).source_code == "x=1"


def test_a_form_batch_is_rails_nested_list(redis_url: str, store: Store) -> None:
    api, h = authed(redis_url), {"X-Auth-Token": TOKEN}
    pairs = [
        ("submissions[][language_id]", "71"), ("submissions[][source_code]", "print(1)"),
        ("submissions[][language_id]", "71"), ("submissions[][source_code]", "print(2)"),
        ("submissions[][stdin]", "in"),
    ]  # fmt: skip
    data = "&".join(f"{k}={v}" for k, v in pairs)
    r = api.post("/submissions/batch", data=data, headers={
        **h, "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 201, r.get_json()
    assert all("token" in item for item in r.get_json()), r.get_json()
    subs = [store.get(item["token"]) for item in r.get_json()]
    assert [(s.submission.source_code, s.submission.stdin) for s in subs if s] == [
        ("print(1)", ""),
        ("print(2)", "in"),
    ]


def test_with_auth_off_attributes_only_in_a_json_request(client: FlaskClient) -> None:
    """A page elsewhere can send a form, or attributes in an action URL, without asking: with
    no token to hold it back, crosssite refuses both (415), as before for forms."""
    r = client.post("/submissions", data={"source_code": "x", "language_id": "71"})
    assert r.status_code == 415
    r = client.post("/submissions?source_code=print(1)&language_id=71")
    assert r.status_code == 415 and "Content-Type" in r.get_json()
    r = client.post("/submissions?source_code=print(1)&language_id=71", json={})
    assert r.status_code == 201


def test_unpadded_and_wrapped_base64_is_decoded(client: FlaskClient, store: Store) -> None:
    source = "print('a fairly long line, so that the encoding wraps at sixty characters')\n"
    wrapped = base64.encodebytes(source.encode()).decode()  # Ruby's encode64: a newline per 60
    assert "\n" in wrapped.strip()
    r = client.post("/submissions?base64_encoded=true", json={**HELLO, "source_code": wrapped})
    assert created(store, r).source_code == source
    unpadded = b64("print(1)").rstrip("=")
    assert len(unpadded) % 4
    body = {**HELLO, "source_code": unpadded, "stdin": b64("ab").rstrip("=")}
    sub = created(store, client.post("/submissions?base64_encoded=true", json=body))
    assert (sub.source_code, sub.stdin) == ("print(1)", "ab")
    for bad in ("%%%", "abcde"):  # not the alphabet; a length no padding completes
        r = client.post("/submissions?base64_encoded=true", json={**HELLO, "source_code": bad})
        assert r.status_code == 422 and "source_code" in r.get_json()


def test_tokens_as_query_parameters(redis_url: str) -> None:
    """Judge0 reads AUTHN_HEADER and AUTHZ_HEADER from the headers or the params."""
    api = authed(redis_url)
    assert api.post("/submissions", json=HELLO).status_code == 401
    assert api.post(f"/submissions?X-Auth-Token={TOKEN}", json=HELLO).status_code == 201
    assert api.post("/submissions?X-Auth-Token=wrong", json=HELLO).status_code == 401
    assert api.post("/authenticate", headers={"X-Auth-Token": TOKEN}).status_code == 200
    page = api.get(f"/submissions?X-Auth-Token={TOKEN}&X-Auth-User={ADMIN}")
    assert page.status_code == 200 and page.get_json()["meta"]["total_count"] == 1
    assert api.get(f"/submissions?X-Auth-Token={TOKEN}&X-Auth-User=no").status_code == 403


@pytest.mark.parametrize(
    ("field", "ok", "refused"),
    [
        ("memory_limit", 2048, 2047),
        ("wall_time_limit", 1, 0.5),
        ("cpu_time_limit", 0, -0.1),
        ("cpu_extra_time", 0, -1),
        ("stack_limit", 0, -1),
        ("max_file_size", 0, -1),
        ("max_processes_and_or_threads", 1, 0),
        ("number_of_runs", 1, 0),
    ],
)
def test_minima_are_judge0s(
    client: FlaskClient, store: Store, field: str, ok: float, refused: float
) -> None:
    assert (
        getattr(created(store, client.post("/submissions", json={**HELLO, field: ok})), field) == ok
    )
    r = client.post("/submissions", json={**HELLO, field: refused})
    assert r.status_code == 422 and field in r.get_json(), r.get_json()
    r = client.post("/submissions", json={**HELLO, "memory_limit": 512001})
    assert r.status_code == 422  # the maxima stay the configured ones


def test_blank_source_code_is_refused_but_for_the_multi_file_language(
    client: FlaskClient, store: Store
) -> None:
    for body in ({"language_id": 71}, {"language_id": 71, "source_code": " \n"}):
        r = client.post("/submissions", json=body)
        assert r.status_code == 422 and r.get_json() == {"source_code": ["can't be blank"]}
    r = client.post("/submissions?base64_encoded=true", json={"language_id": 71, "source_code": ""})
    assert r.get_json() == {"source_code": ["can't be blank"]}
    # Language 89 brings its program as additional_files: that, not source_code, is required.
    r = client.post("/submissions", json={"language_id": 89})
    assert r.status_code == 422 and r.get_json()["additional_files"] == [
        "can't be blank for a Multi-file program (89)"
    ]
    assert "source_code" not in r.get_json()
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("run", "echo hi\n")
    files = base64.encodebytes(zipped.getvalue()).decode()  # wrapped, as Ruby writes it
    r = client.post("/submissions", json={"language_id": 89, "additional_files": files})
    assert "source_code" not in (r.get_json() or {}) and "additional_files" not in r.get_json()


# --- Answers ----------------------------------------------------------------------------------


def finished(store: Store, client: FlaskClient, status: int, result: dict[str, Any]) -> Any:
    token = client.post("/submissions", json=HELLO).get_json()["token"]
    store.start(token)
    store.finish(token, status, result, result["message"])  # as worker.tasks stores it
    return client.get(f"/submissions/{token}?fields=*").get_json()


def test_a_compile_error_has_no_time_memory_or_message(client: FlaskClient, store: Store) -> None:
    result = {"verdict": "CE", "score": 0.0, "max_score": 0.0, "time": 0.0, "memory": 0,
              "compile_output": "x.c:1: error", "message": "Compilation error",
              "status": {"id": 6, "description": "Compilation Error"}, "cases": []}  # fmt: skip
    body = finished(store, client, 6, result)
    assert body["compile_output"] == "x.c:1: error" and body["status"]["id"] == 6
    for name in ("time", "memory", "message", "wall_time", "exit_code", "exit_signal", "stdout"):
        assert body[name] is None, name


def two_cases() -> dict[str, Any]:
    result = ok_result()
    wrong = {**result["cases"][0], "name": "2", "verdict": "RE", "message": "Exited with 3",
             "exit_code": 3, "status": {"id": 11, "description": "x"}}  # fmt: skip
    return {**result, "verdict": "RE", "message": "2: RE Exited with 3",
            "cases": [result["cases"][0], wrong]}  # fmt: skip


def test_message_is_the_runs_not_the_native_case_summary(client: FlaskClient, store: Store) -> None:
    body = finished(store, client, 11, two_cases())
    assert body["message"] == "Exited with 3" and body["exit_code"] == 3
    assert finished(store, client, 3, ok_result())["message"] is None


def test_a_signalled_run_has_exit_code_0_and_its_signal(client: FlaskClient, store: Store) -> None:
    result = ok_result(verdict="RE", status=7)
    result["cases"][0].update(exit_code=None, signal=11, message="Caught fatal signal 11")
    body = finished(store, client, 7, result)
    assert (body["exit_code"], body["exit_signal"]) == (0, 11)
    assert body["message"] == "Caught fatal signal 11"


def test_error_bodies_are_judge0s(redis_url: str, client: FlaskClient) -> None:
    assert client.get("/submissions/nope").get_json()["error"].startswith("Not Found")
    r = client.post("/submissions/batch", json={"submissions": []})
    assert (r.status_code, r.get_json()) == (
        400, {"error": "there should be at least one submission in a batch"})  # fmt: skip
    r = client.post("/submissions/batch", json={"submissions": [HELLO] * 21})
    assert r.status_code == 400
    assert r.get_json()["error"] == (
        "number of submissions in a batch should be less than or equal to 20"
    )
    r = client.get("/submissions/batch?tokens=")
    assert r.status_code == 400 and "at least one" in r.get_json()["error"]
    r = client.get("/submissions/batch?tokens=" + ",".join(["a"] * 21))
    assert r.status_code == 400 and "less than or equal to 20" in r.get_json()["error"]
    # A batch that makes nothing is Judge0's 422, each item its model errors.
    r = client.post("/submissions/batch", json={"submissions": [{"language_id": 71}, {}]})
    assert r.status_code == 422
    assert r.get_json()[0] == {"source_code": ["can't be blank"]}
    assert "language_id" in r.get_json()[1]
    admin = authed(redis_url).get(
        "/submissions?page=0", headers={"X-Auth-Token": TOKEN, "X-Auth-User": ADMIN}
    )
    assert admin.status_code == 400 and admin.get_json()["error"].startswith("invalid page: 0")
    off = authed(redis_url, enable_wait_result=False)
    r = off.post("/submissions?wait=true", json=HELLO, headers={"X-Auth-Token": TOKEN})
    assert r.status_code == 400 and r.get_json()["error"].startswith("wait not allowed")


def test_a_wait_that_ends_first_answers_the_submission_as_it_stands(
    redis_url: str, store: Store
) -> None:
    r = authed(redis_url).post(
        "/submissions?wait=true", json=HELLO, headers={"X-Auth-Token": TOKEN}
    )
    body = r.get_json()
    assert r.status_code == 201 and body["status"] == {"id": 1, "description": "In Queue"}
    assert "wait ended after 0.3 s" in body["message"] and "X-Stockade-Wait" in r.headers
    assert store.get(body["token"]) is not None


# Judge0 CE 1.13.1's Config.config_info, key for key (app/helpers/config.rb).
CONFIG_KEYS = [
    "maintenance_mode", "enable_wait_result", "enable_compiler_options",
    "allowed_languages_for_compile_options", "enable_command_line_arguments",
    "enable_submission_delete", "enable_callbacks", "callbacks_max_tries", "callbacks_timeout",
    "enable_additional_files", "max_queue_size", "cpu_time_limit", "max_cpu_time_limit",
    "cpu_extra_time", "max_cpu_extra_time", "wall_time_limit", "max_wall_time_limit",
    "memory_limit", "max_memory_limit", "stack_limit", "max_stack_limit",
    "max_processes_and_or_threads", "max_max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit", "allow_enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "allow_enable_per_process_and_thread_memory_limit", "max_file_size", "max_max_file_size",
    "number_of_runs", "max_number_of_runs", "redirect_stderr_to_stdout", "max_extract_size",
    "enable_batched_submissions", "max_submission_batch_size", "submission_cache_duration",
    "use_docs_as_homepage", "allow_enable_network", "enable_network",
]  # fmt: skip


def test_config_info_is_the_running_configuration(redis_url: str) -> None:
    limits = {**Config().max_limits, "cpu_time_limit": 7.0, "memory_limit": 256000.0}
    api = authed(
        redis_url, max_queue_depth=7, enable_submission_delete=True, callback_max_tries=5,
        callback_timeout_s=2.5, max_batch_size=4, enable_wait_result=False, max_limits=limits,
    )  # fmt: skip
    info = api.get("/config_info", headers={"X-Auth-Token": TOKEN}).get_json()
    assert list(info) == CONFIG_KEYS
    assert info["max_queue_size"] == 7 and info["enable_submission_delete"] is True
    assert (info["callbacks_max_tries"], info["callbacks_timeout"]) == (5, 2.5)
    assert info["max_submission_batch_size"] == 4 and info["enable_wait_result"] is False
    assert (info["max_cpu_time_limit"], info["max_memory_limit"]) == (7.0, 256000)
    assert info["max_extract_size"] == 32 * 1024  # KB: the workers' archive cap
    r = api.post("/submissions", json={**HELLO, "cpu_time_limit": 7.5},
                 headers={"X-Auth-Token": TOKEN})  # fmt: skip
    assert r.status_code == 422  # what it says is what it holds


def test_statistics_and_system_info_carry_judge0s_keys(client: FlaskClient, store: Store) -> None:
    body = finished(store, client, 4, ok_result("no", "WA", 4))
    client.post("/submissions", json=HELLO)
    stats = client.get("/statistics").get_json()
    assert set(stats) == {"created_at", "cached_until", "submissions", "languages", "statuses",
                          "database"}  # fmt: skip
    assert stats["submissions"]["total"] == 2 and stats["submissions"]["today"] == 2
    days = stats["submissions"]["last_30_days"]
    assert len(days) == 30 and list(days) == sorted(days, reverse=True)
    assert set(days.values()) == {0}  # everything here was made today
    assert {"status": {"id": 4, "name": "Wrong Answer"}, "count": 1} in stats["statuses"]
    assert all(s["count"] > 0 for s in stats["statuses"])
    assert stats["languages"][0]["language"]["id"] == body["language_id"]
    assert stats["database"]["size_in_bytes"] > 0 and stats["database"]["size_pretty"]
    info = client.get("/system_info").get_json()
    for key in ("Architecture", "CPU(s)", "Model name", "Mem", "Swap"):
        assert info[key], key
    with open("/proc/meminfo") as f:
        total_kib = int(f.readline().split()[1])
    mem = info["Mem"]
    value, unit = float(mem[:-2]), mem[-2:]
    assert unit in ("Mi", "Gi") and abs(value * 1024 ** {"Mi": 1, "Gi": 2}[unit] - total_kib) < (
        total_kib * 0.06
    )


# --- CORS -------------------------------------------------------------------------------------

ELSEWHERE = "https://ide.example"


def test_cors_allows_every_origin_by_default_and_answers_preflight(redis_url: str) -> None:
    api = authed(redis_url)
    pre = api.options("/submissions", headers={
        "Origin": ELSEWHERE, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-auth-token"})  # fmt: skip
    assert pre.status_code == 200  # no token asked: a browser sends none with a preflight
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert pre.headers["Access-Control-Allow-Headers"] == "content-type,x-auth-token"
    assert "Access-Control-Allow-Credentials" not in pre.headers
    r = api.post("/submissions", json=HELLO, headers={"Origin": ELSEWHERE, "X-Auth-Token": TOKEN})
    assert r.status_code == 201 and r.headers["Access-Control-Allow-Origin"] == "*"
    r = api.post("/submissions", json=HELLO, headers={"Origin": ELSEWHERE})
    assert r.status_code == 401 and r.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_allow_and_disallow_origin(redis_url: str) -> None:
    h = {"X-Auth-Token": TOKEN}
    only = authed(redis_url, allow_origin=("ide.example", "http://other.example:8080"))
    for origin, echoed in [
        (ELSEWHERE, True), ("http://ide.example", True), ("http://other.example:8080", True),
        ("https://other.example:8080", False), ("https://evil.example", False),
        ("https://ide.example.evil", False),
    ]:  # fmt: skip
        r = only.get("/statuses", headers={**h, "Origin": origin})
        assert r.headers.get("Access-Control-Allow-Origin") == (origin if echoed else None), origin
        if echoed:
            assert "Origin" in r.headers["Vary"]
    pre = only.options("/submissions", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})  # fmt: skip
    assert pre.status_code == 200 and "Access-Control-Allow-Origin" not in pre.headers
    deny = authed(redis_url, disallow_origin=("evil.example",))
    r = deny.get("/statuses", headers={**h, "Origin": "https://www.evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = deny.get("/statuses", headers={**h, "Origin": ELSEWHERE})
    assert r.headers["Access-Control-Allow-Origin"] == ELSEWHERE


def test_with_auth_off_only_a_named_origin_passes_crosssite(redis_url: str) -> None:
    """CORS's every-origin default reaches token-bearing calls only; a page the operator names
    in STOCKADE_ALLOW_ORIGIN is trusted without a token, any other still gets crosssite's 403."""
    open_api = create_app(Config(redis_url=redis_url, redis_prefix="t:")).test_client()
    r = open_api.post("/submissions", json=HELLO, headers={"Origin": ELSEWHERE})
    assert r.status_code == 403 and "Origin" in r.get_json()
    named = create_app(
        Config(redis_url=redis_url, redis_prefix="t:", allow_origin=("ide.example",))
    ).test_client()
    r = named.post("/submissions", json=HELLO, headers={"Origin": ELSEWHERE})
    assert r.status_code == 201 and r.headers["Access-Control-Allow-Origin"] == ELSEWHERE
    r = named.post("/submissions", json=HELLO, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = named.post("/submissions", data=json.dumps(HELLO), headers={
        "Origin": ELSEWHERE, "Content-Type": "text/plain"})  # fmt: skip
    assert r.status_code == 415  # still JSON only
