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
        self.headers: dict[str, str] = {}  # e.g. Retry-After on a 429

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


_MAX_DEPTH = 64  # the API's bodies are a few levels deep; deeper is rejected elsewhere


def read_json() -> Any:
    """The request's JSON body; 400 naming the body and the parser's complaint if malformed."""
    from flask import request

    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError.field(400, "body", "must be a JSON object (the body is empty)")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError.field(400, "body", f"malformed JSON: {e}") from None
    except RecursionError:
        raise ApiError.field(400, "body", "JSON nested too deeply") from None
    where = _lone_surrogate(data, "")
    if where is not None:
        # JSON may spell a lone UTF-16 surrogate (\ud800) that no UTF-8 text can hold.
        raise ApiError.field(422, where or "body", "must be valid Unicode text") from None
    return data


def _lone_surrogate(value: Any, path: str, depth: int = 0) -> str | None:
    """The path of the first string holding a lone surrogate, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if depth > _MAX_DEPTH:
        return None
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        if isinstance(key, str) and _lone_surrogate(key, path, depth) is not None:
            return path or "body"
        found = _lone_surrogate(item, f"{path}.{key}" if path else str(key), depth + 1)
        if found is not None:
            return found
    return None


def read_object() -> dict[str, Any]:
    data = read_json()
    if not isinstance(data, dict):
        raise ApiError.field(400, "body", "must be a JSON object")
    return data
