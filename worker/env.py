"""The spelling of a true/false STOCKADE_ setting, one rule for the API and the worker."""

from __future__ import annotations

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


def parse_bool(text: str) -> bool:
    """True or false in any case, spaces around ignored; anything else is a ValueError, so a
    typo in an operator's setting stops the start-up instead of meaning "off"."""
    word = text.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise ValueError("must be true or false")
