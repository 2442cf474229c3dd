"""Judge0's language list and the languages Judge0 treats apart: 44 (a binary source), 89 (a
zip, no source), the alias ids and the ids no Debian 12 toolchain serves; and output bytes
that are not UTF-8 in Judge0's answers. Flask's test client on a real Redis, no worker."""

from __future__ import annotations

import base64
import io
import zipfile
from typing import Any

from flask.testing import FlaskClient

from service.judge0_view import NOT_UTF8, NOT_UTF8_MANY
from tests.unit.redis_server import redis_url
from tests.unit.service_app import app, client, ok_result, settings, store
from worker.jobs.store import Store

__all__ = ["app", "client", "redis_url", "settings", "store"]

ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256))  # not UTF-8, as a binary is not


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def zipped(files: dict[str, str]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return b64(buf.getvalue())


def test_languages_are_sorted_by_name_with_no_two_rows_alike(client: FlaskClient) -> None:
    langs = client.get("/languages").get_json()
    names = [lang["name"] for lang in langs]
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    ids = {lang["id"] for lang in langs}
    assert {44, 89, 48, 49, 52, 53} <= ids and len(ids) >= 42
    by_id = {lang["id"]: lang["name"] for lang in langs}
    assert by_id[44] == "Executable" and by_id[89] == "Multi-file program"
    assert by_id[48] == "C (GCC 12.2.0) for Judge0's C (GCC 7.4.0)"
    assert by_id[53] == "C++ (GCC 12.2.0) for Judge0's C++ (GCC 8.3.0)"
    assert not ids & {47, 70, 83, 84, 87}


def test_unserved_ids_are_archived_and_say_why(client: FlaskClient) -> None:
    every = client.get("/languages/all").get_json()
    archived = {lang["id"]: lang["name"] for lang in every if lang["is_archived"]}
    assert archived == {
        47: "Basic (FBC 1.07.1)",
        70: "Python (2.7.17)",
        83: "Swift (5.2.3)",
        84: "Visual Basic.Net (vbnc 0.0.0.5943)",
        87: "F# (.NET Core SDK 3.1.202)",
    }
    names = [lang["name"] for lang in every]
    assert names == sorted(names)
    one = client.get("/languages/70").get_json()
    assert one["is_archived"] is True and one["run_cmd"] is None
    assert "Python 2" in one["reason"]
    r = client.post("/submissions", json={"source_code": "print 1", "language_id": 70})
    assert r.status_code == 422
    assert r.get_json()["language_id"] == [
        "language with id 70 (Python (2.7.17)) is archived: Debian 12 packages no Python 2"
    ]
    assert client.get("/languages/48").get_json()["source_file"] == "main.c"


def test_multi_file_program_takes_a_zip_and_no_source(client: FlaskClient, store: Store) -> None:
    files = zipped({"run": "cat\n"})
    r = client.post("/submissions", json={"language_id": 89, "additional_files": files})
    assert r.status_code == 201
    assert store.get(r.get_json()["token"]) is not None
    r = client.post("/submissions", json={"language_id": 89, "source_code": "x"})
    assert r.status_code == 422
    body = r.get_json()
    assert body["additional_files"] == ["can't be blank for a Multi-file program (89)"]
    assert body["source_code"] == ["must be blank for a Multi-file program (89)"]


def test_a_binary_executable_travels_byte_for_byte(client: FlaskClient, store: Store) -> None:
    body = {"source_code": b64(ELF), "language_id": 44}
    r = client.post("/submissions?base64_encoded=true", json=body)
    assert r.status_code == 201
    token = r.get_json()["token"]
    rec = store.get(token)
    assert rec is not None and rec.submission.source_bytes() == ELF
    shown = client.get(f"/submissions/{token}?base64_encoded=true&fields=source_code")
    assert shown.get_json() == {"source_code": b64(ELF)}
    plain = client.get(f"/submissions/{token}?fields=source_code,language_id")
    assert plain.status_code == 400 and plain.get_json() == {"error": NOT_UTF8}
    # Text fields not asked for do not matter.
    assert client.get(f"/submissions/{token}?fields=language_id").status_code == 200
    # A text source for 44 (a script) stays text; bytes for a text language stay refused.
    r = client.post(
        "/submissions?base64_encoded=true",
        json={"source_code": b64(b"#!/bin/sh\necho hi\n"), "language_id": 44},
    )
    rec = store.get(r.get_json()["token"])
    assert rec is not None and rec.submission.source_code == "#!/bin/sh\necho hi\n"
    assert not rec.submission.source_base64
    r = client.post("/submissions?base64_encoded=true", json={**body, "language_id": 71})
    assert r.status_code == 422 and "source_code" in r.get_json()


def binary_result(raw: bytes) -> dict[str, Any]:
    result = ok_result(raw.decode("utf-8", "replace"))
    result["cases"][0]["stdout_b64"] = b64(raw)
    return result


def test_output_bytes_are_exact_with_base64_and_an_error_without(
    client: FlaskClient, store: Store
) -> None:
    raw = b"\xff\xfe\x00binary\n"
    tokens = []
    for _ in range(2):
        r = client.post("/submissions", json={"source_code": "x", "language_id": 71})
        tokens.append(r.get_json()["token"])
        store.start(tokens[-1])
        store.finish(tokens[-1], 3, binary_result(raw))
    r = client.get(f"/submissions/{tokens[0]}?base64_encoded=true")
    assert r.status_code == 200 and base64.b64decode(r.get_json()["stdout"]) == raw
    r = client.get(f"/submissions/{tokens[0]}")
    assert r.status_code == 400 and r.get_json() == {"error": NOT_UTF8}
    batch = f"/submissions/batch?tokens={','.join(tokens)}"
    r = client.get(batch)
    assert r.status_code == 400 and r.get_json() == {"error": NOT_UTF8_MANY}
    r = client.get(batch + "&base64_encoded=true")
    assert [base64.b64decode(s["stdout"]) for s in r.get_json()["submissions"]] == [raw, raw]
