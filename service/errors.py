"""ApiError: a 4xx/5xx answer whose JSON body names the field and the rule it broke."""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    """Raised anywhere in a request; the app turns it into `body` with `status`."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body

    @classmethod
    def fields(cls, status: int, errors: list[str]) -> ApiError:
        """From 'field: rule' sentences to Judge0's {"field": ["rule", ...]} body."""
        body: dict[str, list[str]] = {}
        for error in errors:
            name, _, rule = error.partition(": ")
            body.setdefault(name, []).append(rule or name)
        return cls(status, dict(body))

    @classmethod
    def field(cls, status: int, name: str, rule: str) -> ApiError:
        return cls(status, {name: [rule]})

    @classmethod
    def message(cls, status: int, text: str) -> ApiError:
        return cls(status, {"error": text})


def read_json() -> Any:
    """The request's JSON body; 400 naming the body and the parser's complaint if malformed."""
    from flask import request

    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError.field(400, "body", "must be a JSON object (the body is empty)")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError.field(400, "body", f"malformed JSON: {e}") from None


def read_object() -> dict[str, Any]:
    data = read_json()
    if not isinstance(data, dict):
        raise ApiError.field(400, "body", "must be a JSON object")
    return data
