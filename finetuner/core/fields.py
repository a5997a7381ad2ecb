"""Typed settings: every field of a config dataclass parsed by its annotation, in one place, with one clear line.

`check_fields` is the first step of each config section's ``__post_init__`` (`finetuner.config.FitConfig`'s
sections and `finetuner.training.TrainConfig`): a value from Python, a config file or the CLI is converted to the
field's type (``8.0`` -> ``8``, ``[1, 5]`` -> ``(1, 5)``, a ``Path`` -> text) or refused with a `ConfigError` that
names the field, the value and what is expected. The sections then check ranges with `require`, which raises the
same error, so every wrong setting reads the same way; the CLI renames the field to its flag (`ConfigError.renamed`).

Example:
    >>> @dataclass
    ... class Settings:
    ...     epochs: int = 1
    ...     def __post_init__(self):
    ...         check_fields(self)
    >>> Settings(epochs="x")
    Traceback (most recent call last):
    ...
    finetuner.core.fields.ConfigError: epochs must be a whole number, got 'x'.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import os
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin, get_type_hints

_NO = object()  # "does not parse as this type"


class ConfigError(ValueError):
    """A setting of the wrong type or range: one line naming the setting, the value and what is expected.

    Attributes:
        field: the field's name (``batch_size``).
        value: the value given.
        expected: what would do, in words (``a whole number of at least 2``).
        hint: an optional sentence with the fix.
        name: how the setting is shown (the field, a CLI flag, ``training.batch_size in run.yaml``).
    """

    def __init__(self, field: str, value: Any, expected: str, hint: str = "", name: str | None = None) -> None:
        self.field, self.value, self.expected, self.hint, self.name = field, value, expected, hint, name or field
        super().__init__(f"{self.name} must be {expected}, got {_shown(value)}." + (f" {hint}" if hint else ""))

    def renamed(self, name: str) -> ConfigError:
        """The same error, the setting shown as ``name`` (``--batch-size``)."""
        return ConfigError(self.field, self.value, self.expected, self.hint, name)


def require(ok: bool, field: str, value: Any, expected: str, hint: str = "") -> None:
    """Raise `ConfigError` unless ``ok``: the range checks of a section after `check_fields`.

    Example:
        >>> require(8 >= 2, "batch_size", 8, "at least 2")
    """
    if not ok:
        raise ConfigError(field, value, expected, hint)


def check_fields(instance: Any) -> None:
    """Parse every field of the dataclass ``instance`` by its annotation, in place (see the module docstring).

    Supported annotations: ``bool``, ``int``, ``float`` (finite), ``str`` (a path becomes text), ``None``,
    ``tuple[X, ...]`` / ``list[X]`` (a single X becomes a one-item tuple), ``dict[str, X]``, ``Any``, classes, and
    unions of them.
    """
    hints = field_types(type(instance))
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        setattr(instance, field.name, parse_value(field.name, value, hints[field.name]))


def parse_value(field: str, value: Any, annotation: Any) -> Any:
    """``value`` converted to ``annotation``, or a `ConfigError` naming ``field``.

    Example:
        >>> parse_value("k", [1, 5], tuple[int, ...])
        (1, 5)
    """
    parsed = _parse(value, annotation)
    if parsed is _NO:
        raise ConfigError(field, value, describe(annotation))
    return parsed


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of each field of the dataclass ``cls``."""
    return get_type_hints(cls)


def type_members(annotation: Any) -> tuple[Any, ...]:
    """The members of a union annotation (the annotation itself otherwise).

    Example:
        >>> type_members(int | None)
        (<class 'int'>, <class 'NoneType'>)
    """
    return get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)


def describe(annotation: Any) -> str:
    """What a value of ``annotation`` looks like, in words.

    Example:
        >>> describe(int | str | None)
        'a whole number, text or None'
    """
    words = list(dict.fromkeys(_describe_one(member) for member in type_members(annotation)))
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _describe_one(annotation: Any) -> str:
    simple = {bool: "true or false", int: "a whole number", float: "a finite number", str: "text", Any: "anything"}
    if annotation in simple:
        return simple[annotation]
    if annotation is type(None):
        return "None"
    origin = get_origin(annotation)
    if origin in (tuple, list):
        return f"a list of {_plural(describe(get_args(annotation)[0]))}"
    if origin is dict:
        return "a mapping of names to values (a JSON object)"
    return f"a {getattr(annotation, '__name__', annotation)}"


def _plural(words: str) -> str:
    return {"a whole number": "whole numbers", "text": "texts", "a finite number": "numbers"}.get(words, words)


def _parse(value: Any, annotation: Any) -> Any:
    if annotation is Any:
        return value
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        for member in get_args(annotation):
            parsed = _parse(value, member)
            if parsed is not _NO:
                return parsed
        return _NO
    if annotation is type(None):
        return None if value is None else _NO
    if annotation is bool:
        return value if isinstance(value, bool) else _NO
    if annotation is int:
        return _parse_int(value)
    if annotation is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else _NO
    if annotation is str:
        return value if isinstance(value, str) else str(value) if isinstance(value, os.PathLike) else _NO
    if origin in (tuple, list):
        return _parse_sequence(value, get_args(annotation)[0], origin)
    if origin is dict:
        return _parse_mapping(value, get_args(annotation)[1])
    return value if isinstance(annotation, type) and isinstance(value, annotation) else _NO


def _parse_int(value: Any) -> Any:
    if isinstance(value, bool):
        return _NO
    if isinstance(value, numbers.Integral):
        return int(value)
    return int(value) if isinstance(value, float) and value.is_integer() else _NO


def _parse_sequence(value: Any, item: Any, container: type) -> Any:
    items = [_parse(v, item) for v in value] if isinstance(value, (list, tuple)) else [_parse(value, item)]
    return _NO if any(v is _NO for v in items) else container(items)


def _parse_mapping(value: Any, item: Any) -> Any:
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        return _NO
    items = {key: _parse(v, item) for key, v in value.items()}
    return _NO if any(v is _NO for v in items.values()) else items


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
