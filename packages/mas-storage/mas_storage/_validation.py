"""Input validators shared by every adapter (the spec's Priority 1 helpers)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._exceptions import StorageDataError

__all__ = ["validate_field_types", "validate_required_fields"]


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
