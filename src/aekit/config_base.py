"""Configuration dataclasses that validate themselves and read from plain dicts (JSON/YAML/CLI flags)."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Self

from .errors import ConfigError


def base_type(annotation: Any) -> tuple[type, bool]:
    """(the scalar type, whether None is allowed) of a field annotation like `int | None`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a JSON/YAML/flag value to the field's type, or explain why it cannot be."""
    kind, optional = base_type(annotation)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and optional):
        if optional:
            return None
        raise ConfigError(f"{where}: must be set (got null)")
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            if isinstance(value, str):
                number = float(value)  # accepts "1e4"; refuses "1.5" below
                if not number.is_integer():
                    raise ValueError
                return int(number)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise ValueError
            return value
        if kind is dict:
            if not isinstance(value, dict):
                raise ValueError
            return value
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}") from None
    return value


def setting(default: Any, help: str, default_help: str | None = None) -> Any:
    """A config field with its one-line help: what it does and, in `default_help`, what a 0/None/blank default
    means. `aekit <command> --help` and the command-line reference print it next to the flag."""
    return dataclasses.field(default=default, metadata={"help": help, "default_help": default_help})


def _show_default(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()  # the spelling a flag takes: true/false
    if value is None or value == "":
        return "none"
    return str(value)


class ConfigBase:
    """Mixin for config dataclasses: `from_dict` with helpful errors, `to_dict`, `validate`."""

    section: str = "config"

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def field_help(cls, name: str) -> str:
        """"what the field does; default: X" (X says what a 0/None/blank default means), or "" without help."""
        field = next(f for f in dataclasses.fields(cls) if f.name == name)
        text = field.metadata.get("help", "")
        if not text:
            return ""
        default = field.metadata.get("default_help") or _show_default(field.default)
        return f"{text}; default: {default}"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | None = None) -> Self:
        where = where or cls.section
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        names = cls.field_names()
        unknown = [key for key in data if key not in names]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(names)}"
            raise ConfigError(f"{where}.{key}: unknown setting{hint}")
        values = {key: coerce(value, hints[key], f"{where}.{key}") for key, value in data.items()}
        try:
            obj = cls(**values)
        except TypeError as e:  # a required field is missing
            raise ConfigError(f"{where}: {e}") from None
        obj.validate()
        return obj

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field."""

    def _require(self, ok: bool, field: str, message: str) -> None:
        if not ok:
            raise ConfigError(f"{self.section}.{field}: {message} (got {getattr(self, field)!r})")
