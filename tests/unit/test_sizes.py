"""parse_size: K, M and G are binary, as isolate and Docker take them."""

from __future__ import annotations

import pytest

from sandbox.sizes import parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100", 100),
        ("0", 0),
        ("512K", 512 * 1024),
        ("256M", 256 * 1024 * 1024),
        ("1G", 1024**3),
        ("256m", 256 * 1024 * 1024),
        ("1g", 1024**3),
        ("64MB", 64 * 1024 * 1024),
        ("64MiB", 64 * 1024 * 1024),
        ("1.5K", 1536),
        (" 8M ", 8 * 1024 * 1024),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["", " ", "M", "12Q", "-1", "-1M", "1.2.3", "1e3", "ten", "1 K B", "0x10", "1T"]
)
def test_bad_size_raises_value_error_naming_the_rule(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size") as info:
        parse_size(text)
    assert repr(text) in str(info.value)
    assert "K, M or G" in str(info.value)
