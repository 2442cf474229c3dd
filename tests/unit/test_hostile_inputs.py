"""Hostile archives and bodies: each is refused with a 4xx (or, for an archive the API only
carries, a CE from the worker), never a 5xx. Archives go through the Judge0 API's and the native
API's additional_files, through the worker's extraction, and straight to worker.jobs.archives."""

from __future__ import annotations

import base64
import functools
import io
import stat
import zipfile
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from tests.unit.redis_server import redis_url
from tests.unit.service_app import HELLO, app, client, settings, store
from worker.jobs.archives import ArchiveError, extract_zip
from worker.jobs.model import Submission, Verdict
from worker.judge import BuildError, _additional_files

__all__ = ["app", "client", "redis_url", "settings", "store"]

MIB = 1 << 20


def _zip(entries: list[tuple[str, bytes, int | None]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.create_system = 3
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


def zip_slip() -> bytes:
    return _zip([("ok.txt", b"fine", None), ("../../../../tmp/evil", b"pwned", None)])


def absolute_path() -> bytes:
    return _zip([("/etc/cron.d/evil", b"* * * * * root id", None)])


def symlink() -> bytes:
    return _zip([("passwd", b"/etc/passwd", stat.S_IFLNK | 0o777)])


def symlink_then_write_through() -> bytes:
    # The classic two-step: a link to a directory outside, then a file "inside" the link.
    return _zip([("d", b"/etc", stat.S_IFLNK | 0o777), ("d/evil", b"x", None)])


@functools.cache
def many_tiny_files(n: int = 100_000) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            zf.writestr(f"{i:x}", b"x")
    return buf.getvalue()


@functools.cache
def zip_bomb() -> bytes:
    """One 1 GiB file of zeros (about 1 MiB deflated), written in 1 MiB chunks: the test never
    holds the gigabyte. Built once per session."""
    buf = io.BytesIO()
    info = zipfile.ZipInfo("zeros.bin")
    info.compress_type = zipfile.ZIP_DEFLATED
    with (
        zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf,
        zf.open(info, "w", force_zip64=True) as f,
    ):
        chunk = bytes(MIB)
        for _ in range(1024):
            f.write(chunk)
    return buf.getvalue()


def nested() -> bytes:
    inner = _zip([("inner.txt", b"inside", None)])
    return _zip([("inner.zip", inner, None), ("run", b"cat inner.zip | wc -c\n", None)])


REFUSED: dict[str, Callable[[], bytes]] = {
    "zip slip": zip_slip,
    "absolute path": absolute_path,
    "symlink": symlink,
    "symlink then write through it": symlink_then_write_through,
    "1 GiB zip bomb": zip_bomb,
    "100k tiny files": many_tiny_files,
}


def test_the_bomb_is_what_it_claims() -> None:
    data = zip_bomb()
    assert len(data) < 2 * MIB
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.infolist()[0].file_size == 1 << 30


@pytest.mark.parametrize("name", list(REFUSED))
def test_archives_refused_by_worker_archives(name: str) -> None:
    with pytest.raises(ArchiveError):
        extract_zip(REFUSED[name]())


@pytest.mark.parametrize("name", list(REFUSED))
def test_archives_refused_by_the_judge_as_ce(name: str) -> None:
    """What the worker does with the API's additional_files: CE naming the refusal."""
    sub = Submission(
        source_code="", language_id=89, additional_files=base64.b64encode(REFUSED[name]()).decode()
    )
    with pytest.raises(BuildError) as e:
        _additional_files(sub)
    assert e.value.verdict == Verdict.CE and "refused" in str(e.value)


def test_nested_archive_is_just_a_file() -> None:
    files = extract_zip(nested())
    assert set(files) == {"inner.zip", "run"}
    assert zipfile.ZipFile(io.BytesIO(files["inner.zip"])).read("inner.txt") == b"inside"


@pytest.mark.parametrize("name", list(REFUSED))
@pytest.mark.parametrize("api", ["/submissions", "/api/v1/submissions"])
def test_hostile_archives_through_the_apis_are_4xx(
    client: FlaskClient, api: str, name: str
) -> None:
    """The API checks additional_files with the worker's own rules: a hostile archive is
    refused at the edge (422 naming the field), or the body is too large (413)."""
    data = REFUSED[name]()
    body = {**HELLO, "additional_files": base64.b64encode(data).decode()}
    r = client.post(api, json=body)
    assert r.status_code in (413, 422), r.get_data()[:300]
    if r.status_code == 422:
        assert "additional_files" in r.get_data(as_text=True)


@pytest.mark.parametrize("api", ["/submissions", "/api/v1/submissions"])
def test_a_nested_archive_is_accepted(client: FlaskClient, api: str) -> None:
    body = {**HELLO, "additional_files": base64.b64encode(nested()).decode()}
    assert client.post(api, json=body).status_code == 201


@pytest.mark.parametrize("api", ["/submissions", "/api/v1/submissions", "/api/v2/execute"])
def test_50_mb_json_body_is_413(client: FlaskClient, api: str) -> None:
    body = b'{"source_code": "' + b"a" * (50 * MIB) + b'", "language_id": 71}'
    r = client.post(api, data=body, content_type="application/json")
    assert r.status_code == 413
    assert "body" in r.get_json()


@pytest.mark.parametrize("api", ["/submissions", "/api/v1/submissions"])
def test_additional_files_not_base64_is_422(client: FlaskClient, api: str) -> None:
    r = client.post(api, json={**HELLO, "additional_files": "not base64 at all!"})
    assert r.status_code == 422 and "additional_files" in r.get_json()


@pytest.mark.parametrize("api", ["/submissions", "/api/v1/submissions", "/api/v2/execute"])
@pytest.mark.parametrize(
    "body",
    [
        b'{"source_code": "\xff\xfe", "language_id": 71}',  # not UTF-8 at all
        b'{"source_code": "\xc3\x28", "language_id": 71}',  # a broken two-byte sequence
        b'{"source_code": "x", "language_id": 71',  # truncated
    ],
)
def test_invalid_utf8_and_malformed_bodies_are_400(
    client: FlaskClient, api: str, body: bytes
) -> None:
    r = client.post(api, data=body, content_type="application/json")
    assert r.status_code in (400, 422), r.get_data()[:300]


def test_invalid_utf8_in_base64_fields_is_422(client: FlaskClient) -> None:
    bad = base64.b64encode(b"print('\xff')").decode()
    r = client.post(
        "/submissions?base64_encoded=true", json={"source_code": bad, "language_id": 71}
    )
    assert r.status_code == 422 and "source_code" in r.get_json()
    r = client.post(
        "/api/v2/execute",
        json={"language": "python", "files": [{"content": bad, "encoding": "base64"}]},
    )
    assert r.status_code in (400, 422)


# --- Found by these tests: 5xx today (kept uncommitted until the service is fixed) ---------


@pytest.mark.parametrize("api", ["/submissions", "/api/v1/submissions", "/api/v2/execute"])
@pytest.mark.parametrize("opener,closer", [(b"[", b"]"), (b'{"a":', b"}")])
def test_deeply_nested_json_is_400(
    client: FlaskClient, api: str, opener: bytes, closer: bytes
) -> None:
    depth = 100_000
    body = opener * depth + (b"1" if opener != b"[" else b"") + closer * depth
    r = client.post(api, data=body, content_type="application/json")
    assert r.status_code == 400, r.get_data()[:300]


@pytest.mark.parametrize(
    "api,body",
    [
        ("/submissions", b'{"source_code": "\\ud800", "language_id": 71}'),
        ("/submissions", b'{"source_code": "x", "language_id": 71, "stdin": "\\udfff"}'),
        ("/api/v1/submissions", b'{"source_code": "x", "language_id": 71, "stdin": "\\udfff"}'),
        (
            "/submissions",
            b'{"source_code": "x", "language_id": 71, "callback_url": '
            b'"http://\\ud800.example.com/"}',
        ),
        (
            "/api/v2/execute",
            b'{"language": "python", "files": [{"content": "x"}, '
            b'{"name": "\\ud800", "content": "y"}]}',
        ),
    ],
)
def test_lone_surrogates_in_fields_are_4xx(client: FlaskClient, api: str, body: bytes) -> None:
    """JSON may escape a lone surrogate (\\ud800): valid JSON, not valid UTF-8 text."""
    r = client.post(api, data=body, content_type="application/json")
    assert r.status_code in (400, 422), r.get_data()[:300]
