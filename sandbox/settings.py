"""The one reader of STOCKADE_* variables: each setting is declared once, with its default and
what it does, and read by one rule per type; `stockade config` lists every one declared."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# One spelling of true and false for every setting, the API's and the workers' alike.
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")

Value = str | int | float | bool | tuple[str, ...]


def parse_bool(text: str) -> bool:
    """True or false in any case, spaces around ignored; anything else is a ValueError, so a
    typo in an operator's setting stops the start-up instead of meaning "off"."""
    word = text.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise ValueError("must be true or false")


@dataclass(frozen=True)
class Setting:
    """One STOCKADE_ variable. Unset or empty, it is its default (a compose file's `VAR: ""`
    means "not set"); else it is parsed by its default's type: bool by parse_bool, numbers
    as numbers, a tuple as a comma-separated list."""

    name: str
    default: Value
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    secret: bool = False  # `stockade config` says whether it is set, never what it is

    def parse(self, text: str) -> Value:
        """The value `text` says, or a ValueError that names the variable and the rule."""
        try:
            value = self._convert(text)
        except ValueError as e:
            raise ValueError(f"{self.name}: {e} (got {text!r})") from None
        if self.choices and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise ValueError(f"{self.name}: must be one of {allowed} (got {text!r})")
        if self.minimum is not None and isinstance(value, int | float) and value < self.minimum:
            raise ValueError(f"{self.name}: must be at least {self.minimum:g} (got {text!r})")
        return value

    def _convert(self, text: str) -> Value:
        if isinstance(self.default, bool):
            return parse_bool(text)
        if isinstance(self.default, int):
            try:
                return int(text.strip())
            except ValueError:
                raise ValueError("must be a whole number") from None
        if isinstance(self.default, float):
            try:
                return float(text.strip())
            except ValueError:
                raise ValueError("must be a number") from None
        if isinstance(self.default, tuple):
            return tuple(w.strip() for w in text.split(",") if w.strip())
        return text

    def raw(self, env: Mapping[str, str] | None = None) -> str | None:
        return (os.environ if env is None else env).get(self.name)

    def is_set(self, env: Mapping[str, str] | None = None) -> bool:
        """Whether the variable says anything (unset and empty both mean the default)."""
        return bool((self.raw(env) or "").strip())

    def read(self, env: Mapping[str, str] | None = None) -> Value:
        text = self.raw(env)
        return self.parse(text) if text is not None and self.is_set(env) else self.default

    def as_str(self, env: Mapping[str, str] | None = None) -> str:
        value = self.read(env)
        assert isinstance(value, str), self.name
        return value

    def as_int(self, env: Mapping[str, str] | None = None) -> int:
        value = self.read(env)
        assert isinstance(value, int) and not isinstance(value, bool), self.name
        return value

    def as_float(self, env: Mapping[str, str] | None = None) -> float:
        value = self.read(env)
        assert isinstance(value, float), self.name
        return value

    def as_bool(self, env: Mapping[str, str] | None = None) -> bool:
        value = self.read(env)
        assert isinstance(value, bool), self.name
        return value

    def as_words(self, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
        value = self.read(env)
        assert isinstance(value, tuple), self.name
        return value

    @staticmethod
    def spell(value: Value) -> str:
        """A value as an operator would write it."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple):
            return ",".join(value)
        return f"{value:g}" if isinstance(value, float) else str(value)


# Every setting declared in this process, by name: what `stockade config` lists. A module
# declares its settings at import; which are here depends on which parts are loaded.
DECLARED: dict[str, Setting] = {}


def setting(
    name: str,
    default: Value,
    doc: str,
    choices: tuple[str, ...] = (),
    minimum: float | None = None,
    secret: bool = False,
) -> Setting:
    """Declare a setting (at module level). Declaring a name again gives back the first
    declaration when it agrees, and fails when it does not: a variable has one default."""
    new = Setting(name, default, doc, choices, minimum, secret)
    old = DECLARED.setdefault(name, new)
    if (old.default, old.choices, old.minimum) != (new.default, new.choices, new.minimum):
        raise ValueError(f"{name} is declared twice, differently: {old} and {new}")
    return old
