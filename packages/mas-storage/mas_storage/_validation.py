"""Input validators shared by every adapter (required fields present, fields of the expected
types), and :func:`quote_value`, the bounded way for an error message to quote what the caller
passed."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

from ._exceptions import StorageDataError

__all__ = ["QUOTE_CHARS", "quote_value", "validate_field_types", "validate_required_fields"]

#: The longest quote :func:`quote_value` returns.
QUOTE_CHARS = 120
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel = 3
_QUOTE.maxstring = _QUOTE.maxother = _QUOTE.maxlong = 80
_QUOTE.maxdict = _QUOTE.maxlist = _QUOTE.maxtuple = _QUOTE.maxset = _QUOTE.maxfrozenset = 6


def quote_value(value: Any) -> str:
    """A short ``repr`` of a caller's value for an error message (:data:`QUOTE_CHARS` at most).

    Long strings and numbers keep their start and end, containers their first items
    (:mod:`reprlib`), so a 1 MB value names itself in a line, and a ``__repr__`` that raises
    gives a placeholder instead of a second error. Use it instead of ``{value!r}``.
    """
    try:
        text = _QUOTE.repr(value)
    except Exception:  # e.g. an int beyond the interpreter's digit limit, or a broken __len__
        text = f"<{type(value).__name__} object>"
    if len(text) > QUOTE_CHARS:  # a container of long items: its start and end
        half = (QUOTE_CHARS - 3) // 2
        text = f"{text[:half]}...{text[-half:]}"
    return text


def validate_required_fields(data: Mapping[str, Any], required: Iterable[str]) -> None:
    """Raise :class:`StorageDataError` naming every field of ``required`` absent from ``data``."""
    if not isinstance(data, Mapping):
        raise StorageDataError(f"Expected a mapping, got {type(data).__name__}")
    missing = [field for field in required if field not in data]
    if missing:
        raise StorageDataError(f"Missing required fields: {', '.join(missing)}")


def validate_field_types(
    data: Mapping[str, Any], type_specs: Mapping[str, type | tuple[type, ...]]
) -> None:
    """Raise :class:`StorageDataError` when a present field is not of its expected type.

    ``bool`` is not accepted where ``int`` or ``float`` is expected: ``True`` as a turn number or
    a confidence is a caller bug, even though Python treats it as an int.
    """
    for field, expected in type_specs.items():
        if field not in data:
            continue
        value = data[field]
        wanted = expected if isinstance(expected, tuple) else (expected,)
        bad_bool = isinstance(value, bool) and bool not in wanted
        if bad_bool or not isinstance(value, wanted):
            names = " or ".join(t.__name__ for t in wanted)
            raise StorageDataError(f"Field '{field}' must be {names}, got {type(value).__name__}")
