"""Every Judge0 CE 1.13 endpoint of the issue against the real stack."""

from __future__ import annotations

import base64

import httpx

from tests.e2e.conftest import CPP, PYTHON, Stack, poll

HELLO = 'print("hello")\n'


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_submit_and_get(api: httpx.Client) -> None:
    r = api.post("/submissions", json={"source_code": HELLO, "language_id": PYTHON})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    body = poll(api, token)
    assert body["status"] == {"id": 3, "description": "Accepted"}
    assert body["stdout"] == "hello\n"
    assert isinstance(body["time"], str) and isinstance(body["memory"], int)


def test_wait_base64_and_fields(api: httpx.Client) -> None:
    r = api.post(
        "/submissions",
        params={"base64_encoded": "true", "wait": "true", "fields": "stdout,status_id"},
        json={"source_code": b64(HELLO), "language_id": PYTHON, "stdin": b64("")},
    )
    assert r.status_code == 201, r.text
    assert r.json() == {"stdout": b64("hello\n"), "status_id": 3}


def test_get_all_fields(api: httpx.Client) -> None:
    token = api.post("/submissions?wait=true", json={"source_code": HELLO, "language_id": 71})
    body = api.get(f"/submissions/{token.json()['token']}", params={"fields": "*"}).json()
    for name in (
        "source_code",
        "language_id",
        "stdin",
        "expected_output",
        "cpu_time_limit",
        "memory_limit",
        "wall_time",
        "exit_code",
        "created_at",
        "finished_at",
        "token",
    ):
        assert name in body, name  # fmt: skip


def test_expected_output_cpp_and_compile_error(api: httpx.Client) -> None:
    src = "#include <iostream>\nint main(){int a,b;std::cin>>a>>b;std::cout<<a+b<<'\\n';}\n"
    r = api.post(
        "/submissions?wait=true",
        json={"source_code": src, "language_id": CPP, "stdin": "2 3", "expected_output": "5"},
    )
    assert r.json()["status"]["id"] == 3, r.text
    wrong = {"source_code": src, "language_id": CPP, "stdin": "2 3", "expected_output": "6"}
    assert api.post("/submissions?wait=true", json=wrong).json()["status"]["id"] == 4
    broken = {"source_code": "int main( {", "language_id": CPP}
    body = api.post("/submissions?wait=true&fields=*", json=broken).json()
    assert body["status"]["id"] == 6 and body["compile_output"]
    # Judge0 clears what would describe a run that never happened.
    for name in ("time", "memory", "message", "wall_time", "exit_code", "exit_signal"):
        assert body[name] is None, (name, body[name])


def test_list_paged_and_delete(api: httpx.Client, stack: Stack) -> None:
    token = api.post("/submissions?wait=true", json={"source_code": HELLO, "language_id": 71})
    token = token.json()["token"]
    # Judge0's AUTHZ calls: 403 without an X-Auth-User token, deleting off by default.
    assert api.get("/submissions").status_code == 403
    assert api.delete(f"/submissions/{token}").status_code == 403
    url = stack.start_api(
        "api-authz", STOCKADE_AUTHZ_TOKENS="adm", STOCKADE_ENABLE_SUBMISSION_DELETE="1"
    )
    with httpx.Client(base_url=url, timeout=30, headers={"X-Auth-User": "adm"}) as admin:
        page = admin.get("/submissions", params={"page": 1, "per_page": 2}).json()
        assert len(page["submissions"]) <= 2 and page["meta"]["total_count"] >= 1
        assert admin.delete(f"/submissions/{token}").status_code == 200
    assert api.get(f"/submissions/{token}").status_code == 404


def test_batch(api: httpx.Client) -> None:
    subs = [{"source_code": f"print({i})", "language_id": PYTHON} for i in range(3)]
    r = api.post("/submissions/batch", json={"submissions": subs})
    assert r.status_code == 201, r.text
    tokens = [t["token"] for t in r.json()]
    for t in tokens:
        poll(api, t)
    got = api.get("/submissions/batch", params={"tokens": ",".join(tokens)}).json()
    assert [s["stdout"] for s in got["submissions"]] == ["0\n", "1\n", "2\n"]


def test_languages_and_statuses(api: httpx.Client) -> None:
    langs = api.get("/languages").json()
    assert {PYTHON, CPP} <= {lang["id"] for lang in langs}
    assert api.get("/languages/71").json()["id"] == PYTHON
    assert api.get("/languages/all").status_code == 200
    assert api.get("/languages/999999").status_code == 404
    statuses = api.get("/statuses").json()
    assert [s["id"] for s in statuses] == list(range(1, 15))


def test_info_endpoints(api: httpx.Client) -> None:
    for path in (
        "/config_info",
        "/system_info",
        "/about",
        "/version",
        "/license",
        "/statistics",
        "/workers",
    ):
        assert api.get(path).status_code == 200, path  # fmt: skip
    assert api.get("/about").json()["version"].startswith("1.13")
    assert api.get("/config_info").json()["max_queue_size"] > 0


def test_workers_heartbeat_and_statistics_by_language(api: httpx.Client) -> None:
    r = api.post("/submissions?wait=true", json={"source_code": HELLO, "language_id": 71})
    assert r.status_code == 201 and r.json()["status"]["id"] == 3
    stats = api.get("/statistics").json()
    python = [x for x in stats["languages"] if x["language"]["id"] == 71]
    assert python and python[0]["count"] >= 1 and python[0]["language"]["name"].startswith("Py")
    (queue,) = api.get("/workers").json()
    # The worker's heartbeat: a live host, its slots, and the tiers it serves.
    assert queue["available"] >= 1 and queue["idle"] <= queue["available"]
    (host,) = queue["workers"]
    assert "container" in host["tiers"] and host["concurrency"] == queue["available"]
    assert set(host["tiers"]) | set(host["tiers_unavailable"]) == {"container", "gvisor", "microvm"}


def test_trailing_slashes(api: httpx.Client) -> None:
    assert api.get("/languages/").status_code == 200
    r = api.post("/submissions/?wait=true", json={"source_code": HELLO, "language_id": 71})
    assert r.status_code == 201


def test_authenticate_open_by_default_authorize_as_judge0(api: httpx.Client) -> None:
    assert api.post("/authenticate").status_code == 200
    # Judge0's authorize_request: without AUTHZ tokens nothing is authorized (listing and
    # deleting neither).
    assert api.post("/authorize").status_code == 403


def test_bad_input_is_4xx_naming_the_field(api: httpx.Client) -> None:
    r = api.post("/submissions", json={"source_code": HELLO, "language_id": 424242})
    assert r.status_code == 422 and "language_id" in r.text
    r = api.post("/submissions?base64_encoded=true", json={"source_code": "@@", "language_id": 71})
    assert r.status_code in (400, 422) and "source_code" in r.text
    r = api.post("/submissions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500


def test_signals_exit_codes_and_messages_as_judge0(api: httpx.Client) -> None:
    """isolate writes no exit code for a signalled program and Judge0 reports 0 with the
    signal; the message is the run's, never the native API's case summary ("1: RE ...")."""
    segv = "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"
    r = api.post("/submissions?wait=true&fields=*", json={"source_code": segv, "language_id": 71})
    body = r.json()
    assert body["status"]["id"] == 7, body
    assert (body["exit_code"], body["exit_signal"]) == (0, 11)
    assert body["time"] is not None and isinstance(body["memory"], int)
    exit3 = "import sys\nsys.exit(3)\n"
    body = api.post(
        "/submissions?wait=true&fields=*", json={"source_code": exit3, "language_id": 71}
    ).json()
    assert body["status"]["id"] == 11 and body["exit_code"] == 3 and body["exit_signal"] is None
    assert body["message"] and not body["message"].startswith("1:"), body["message"]


def test_text_numbers_and_judge0s_minima_on_a_real_worker(api: httpx.Client) -> None:
    """Numbers and booleans as text, cast as Rails casts them; a zero CPU or stack limit (none,
    as isolate reads it) and a 2048 KB memory limit (below the box's floor) reach a real box."""
    body = {
        "source_code": "import sys\nprint('out', flush=True)\nprint('err', file=sys.stderr)\n",
        "language_id": "71", "cpu_time_limit": "0", "stack_limit": "0", "wall_time_limit": "5",
        "memory_limit": "65536", "redirect_stderr_to_stdout": "true", "number_of_runs": "2",
    }  # fmt: skip
    r = api.post("/submissions?wait=true&fields=*", json=body)
    out = r.json()
    assert r.status_code == 201 and out["status"]["id"] == 3, out
    assert out["stdout"] == "out\nerr\n" and out["stderr"] is None
    assert (out["cpu_time_limit"], out["stack_limit"], out["number_of_runs"]) == ("0.000", 0, 2)
    tiny = {"source_code": "print('x' * 10**7)\n", "language_id": 71, "memory_limit": 2048}
    out = api.post("/submissions?wait=true", json=tiny).json()
    assert out["status"]["id"] not in (3, 13), out  # Python needs more than 2 MB: no Accepted


def test_form_bodies_query_tokens_and_cors(stack: Stack) -> None:
    """With auth on (a page cannot send a token it lacks): a Judge0 form body, the token as a
    query parameter, and Judge0's CORS (every origin, preflight answered without a token)."""
    url = stack.start_api("api-forms", STOCKADE_AUTH_TOKENS="tok")
    with httpx.Client(base_url=url, timeout=60) as api:
        form = {"source_code": "print(input())", "language_id": "71", "stdin": "via form",
                "wait": "true"}  # fmt: skip
        r = api.post("/submissions?X-Auth-Token=tok", data=form, headers={"Origin": "https://x.io"})
        assert r.status_code == 201, r.text
        assert r.json()["stdout"] == "via form\n"
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        pre = api.options("/submissions", headers={
            "Origin": "https://x.io", "Access-Control-Request-Method": "POST"})  # fmt: skip
        assert pre.status_code == 200 and pre.headers["Access-Control-Allow-Origin"] == "*"
        assert api.post("/submissions", data=form).status_code == 401
