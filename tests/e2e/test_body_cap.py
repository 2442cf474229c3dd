"""The request body cap: a client that sends too much gets a 413, not a reset connection."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import PYTHON, Stack


def test_body_cap_answers_413(stack: Stack) -> None:
    url = stack.start_api("api-body-cap", STOCKADE_MAX_BODY_BYTES="65536")
    with httpx.Client(base_url=url, timeout=30) as c:
        body = {"source_code": "print(1)", "language_id": PYTHON, "stdin": "x" * 70000}
        assert c.post("/submissions", json=body).status_code == 413
