"""An uploaded zip as the API takes it (problem packages, assignments): base64 text of at
most STOCKADE_MAX_PACKAGE_BYTES, refused with a 4xx naming the field."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from service.errors import ApiError


def zip_field(body: dict[str, Any], name: str, cap: int) -> bytes:
    """The zip's bytes from body[name]; its size is checked before decoding (base64 is 4/3
    of the bytes), so an oversized upload costs no decode."""
    text = body.get(name)
    if not isinstance(text, str) or not text:
        raise ApiError.field(422, name, "must be a base64 string of a zip")
    if len(text) > (cap + 2) // 3 * 4:
        raise ApiError.field(413, name, f"must be at most {cap} bytes (STOCKADE_MAX_PACKAGE_BYTES)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError.field(422, name, "must be valid base64 (of a zip)") from None
