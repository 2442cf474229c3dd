"""Judge0's request parameters as its Rails app reads them: the query string over the body (JSON,
form or multipart), numbers and booleans sent as text, base64 with newlines or no padding."""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any
from urllib.parse import parse_qsl

from flask import request

from service.errors import ApiError, read_json

# Judge0's submission_params: the attributes a form or a query string may carry.
PERMITTED = (
    "source_code", "language_id", "compiler_options", "command_line_arguments",
    "number_of_runs", "stdin", "expected_output", "cpu_time_limit", "cpu_extra_time",
    "wall_time_limit", "memory_limit", "stack_limit", "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit", "enable_per_process_and_thread_memory_limit",
    "max_file_size", "redirect_stderr_to_stdout", "callback_url", "additional_files",
    "enable_network",
)  # fmt: skip
INTEGERS = (
    "language_id", "number_of_runs", "memory_limit", "stack_limit",
    "max_processes_and_or_threads", "max_file_size",
)  # fmt: skip
DECIMALS = ("cpu_time_limit", "cpu_extra_time", "wall_time_limit")
BOOLEANS = (
    "redirect_stderr_to_stdout", "enable_network",
    "enable_per_process_and_thread_time_limit", "enable_per_process_and_thread_memory_limit",
)  # fmt: skip
TEXTS = (
    "source_code", "stdin", "expected_output", "compiler_options", "command_line_arguments",
    "callback_url", "additional_files",
)  # fmt: skip
# Rails' boolean cast: these words are false. Rails reads every other word as true; here only
# these are, and any other word is a 422 rather than a guess.
_FALSE = ("false", "f", "0", "off")
_TRUE = ("true", "t", "1", "on", "yes", "y")
# Judge0 validates wall_time_limit >= 1; the model's floor is lower for the native API.
JUDGE0_MINIMA = {"wall_time_limit": 1.0}
MULTI_FILE_ID = 89  # Judge0's "Multi-file program": no source_code, a zip of scripts
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def request_params() -> dict[str, Any]:
    """The body's fields with the query string's over them, as Rails' `params`: a JSON object,
    or the fields of a form (`submissions[][name]` builds a batch's list)."""
    body: dict[str, Any]
    raw = request.get_data(cache=True, parse_form_data=False)
    # `curl -d '{...}'` labels JSON as a form: a body that is a JSON object is read as one.
    if request.mimetype == _FORMS[0] and not raw.lstrip().startswith(b"{"):
        # Parsed here, in order: a MultiDict groups repeated names, and a batch's items are
        # told apart by the order of their fields.
        body = _nested(_pairs(raw))
    elif request.mimetype == _FORMS[1]:
        body = _nested(list(request.form.items(multi=True)))
    elif raw.strip():
        data = read_json()
        if not isinstance(data, dict):
            raise ApiError.field(400, "body", "must be a JSON object")
        body = data
    else:
        body = {}
    return {**body, **_nested(_pairs(request.query_string))}


def _pairs(raw: bytes) -> list[tuple[str, str]]:
    return parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)


def _nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Rails' reading of `name[][key]=value` pairs: a list of objects, a new one whenever a key
    repeats; a plain name keeps its last value."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        outer, sep, rest = name.partition("[][")
        if sep and rest.endswith("]") and "[" not in rest:
            items = out.get(outer)
            if not isinstance(items, list):
                items = out[outer] = []
            key = rest[:-1]
            if not items or key in items[-1]:
                items.append({})
            items[-1][key] = value
        else:
            out[name] = value
    return out


def flag(params: dict[str, Any], name: str) -> bool:
    """A switch such as `wait` or `base64_encoded`: Judge0 compares with "true"."""
    value = params.get(name)
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1", "yes"))


def cast(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A Judge0 submission's attributes cast as Rails casts them for its columns: "71" is 71,
    "2.5" is 2.5, "" is unset (the default), "true"/"false" are booleans, a number given for
    a text is its text. Returns the cast body and 'field: rule' sentences for what cannot be
    cast (those fields are left out of the body)."""
    body, errors = dict(data), []
    for name in (*INTEGERS, *DECIMALS, *BOOLEANS, *TEXTS):
        if name not in body:
            continue
        value, rule = _cast_one(name, body[name])
        if rule:
            errors.append(f"{name}: {rule}")
            del body[name]
        elif value is None:
            body.pop(name)
        else:
            body[name] = value
    return body, errors


def _cast_one(name: str, value: Any) -> tuple[Any, str]:
    if value is None:
        return None, ""
    if name in TEXTS:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value), ""
        return value, ""  # the model's own rules name any other type
    if name in BOOLEANS:
        if isinstance(value, bool):
            return value, ""
        text = str(value).strip().lower() if isinstance(value, str | int) else None
        if text == "":
            return None, ""
        if text in _TRUE or text in _FALSE:
            return text in _TRUE, ""
        return None, f"must be true or false, got {value!r}"
    if isinstance(value, str):
        if not value.strip():
            return None, ""
        try:
            value = float(value.strip())
        except ValueError:
            return None, f"is not a number, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"is not a number, got {value!r}"
    if not math.isfinite(value):
        return None, f"must be a finite number, got {value!r}"
    if name in INTEGERS:
        return int(value), ""  # Rails' integer cast drops the fraction
    return float(value), ""


def judge0_errors(body: dict[str, Any]) -> list[str]:
    """Judge0's rules the model does not hold: its own minima, and source_code present (but
    for the multi-file language, whose zip and blank source the model's rules require)."""
    errors = []
    for name, low in JUDGE0_MINIMA.items():
        value = body.get(name)
        if isinstance(value, int | float) and value < low:
            errors.append(f"{name}: must be greater than or equal to {low:g}")
    source = body.get("source_code")
    blank = source is None or (isinstance(source, str) and not source.strip())
    if blank and body.get("language_id") != MULTI_FILE_ID:
        errors.append("source_code: can't be blank")
    return errors


def b64text(name: str, value: Any) -> Any:
    """A base64 field's text, decoded as Ruby's decoder takes it: newlines anywhere (Ruby's
    encoder writes one every 60 characters) and the padding optional. 422 naming the field
    when it is not base64 or not UTF-8."""
    if not isinstance(value, str):
        return value
    try:
        return b64bytes(value).decode()
    except (binascii.Error, ValueError):
        raise ApiError.field(422, name, "must be valid base64 of UTF-8 text") from None


def b64bytes(value: str) -> bytes:
    text = "".join(value.split())
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def canonical_b64(value: Any) -> Any:
    """additional_files in the one form the model and the worker read: padded, one line."""
    if not isinstance(value, str):
        return value
    try:
        return base64.b64encode(b64bytes(value)).decode()
    except (binascii.Error, ValueError):
        return value  # the model's rule names it
