"""A ``filter_by`` string built from caller values that cannot change the filter's meaning.

String values are quoted with backticks, so ``&&``, ``||``, commas, colons and parentheses inside
them are literal. Typesense 0.24 splits a filter on ``&&``/``||`` and parentheses before it
honours any escape, so a value holding a backtick cannot be quoted safely: it is rejected.
Field names come only from the collection's schema (or a nested path under one of its
``object`` fields), never from free text.

Typesense compares a string filter token by token, ignoring case and symbols: ``a && b``,
``A || B`` and ``(a) b`` are all equal to it, and so are ``session-123`` and ``Session_123``.
:func:`matches_exactly` re-checks each hit against the exact values so that a filter never
returns a near-namesake (another session's facts, for one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from mas_storage import StorageDataError

__all__ = ["build_filter", "matches_exactly"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_NUMERIC = frozenset({"int32", "int64", "float", "int32[]", "int64[]", "float[]"})
_BOOL = frozenset({"bool", "bool[]"})
_OBJECT = frozenset({"object", "object[]"})


def _field_type(name: str, fields: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The schema type of ``name``; ``None`` for a nested path under an object field.

    Raises :class:`StorageDataError` when the name is not a field of the collection.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise StorageDataError(f"Invalid filter field name {name!r}")
    field = fields.get(name)
    if field is not None and "*" not in name:
        return str(field.get("type", ""))
    root = name.split(".", 1)[0]
    root_field = fields.get(root)
    if "." in name and root_field is not None and root_field.get("type") in _OBJECT:
        return None
    known = ", ".join(sorted(n for n in fields if "*" not in n))
    raise StorageDataError(f"Unknown filter field '{name}'; the collection's fields are: {known}")


def _render(field: str, value: Any, ftype: str | None) -> str:
    """One value as filter syntax for a field of type ``ftype`` (``None``: by Python type)."""
    if isinstance(value, bool):
        if ftype is not None and ftype not in _BOOL:
            raise StorageDataError(f"Filter on '{field}' ({ftype}) cannot take a bool")
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if ftype is not None and ftype not in _NUMERIC:
            raise StorageDataError(f"Filter on '{field}' ({ftype}) needs a string, not a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise StorageDataError(f"Filter on '{field}' cannot take {value!r}")
        return repr(value)
    if isinstance(value, str):
        if ftype is not None and (ftype in _NUMERIC or ftype in _BOOL):
            raise StorageDataError(f"Filter on '{field}' ({ftype}) cannot take a string")
        if "`" in value:
            raise StorageDataError(
                f"Filter value for '{field}' contains a backtick, which Typesense cannot "
                "quote safely"
            )
        return f"`{value}`"
    raise StorageDataError(
        f"Filter on '{field}' takes a string, number, bool or a list of them, "
        f"not {type(value).__name__}"
    )


def build_filter(filters: Any, fields: Mapping[str, Mapping[str, Any]]) -> str:
    """Turn ``{field: value | [values]}`` into ``field:=`value` && field2:=[`a`,`b`]``."""
    if not isinstance(filters, Mapping):
        raise StorageDataError(f"'filters' must be a mapping, not {type(filters).__name__}")
    clauses = []
    for field, value in filters.items():
        ftype = _field_type(field, fields)
        if isinstance(value, (list, tuple, set, frozenset)):
            if not value:
                raise StorageDataError(f"Filter on '{field}' has an empty list of values")
            items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
            rendered = ",".join(_render(field, v, ftype) for v in items)
            clauses.append(f"{field}:=[{rendered}]")
        else:
            clauses.append(f"{field}:={_render(field, value, ftype)}")
    return " && ".join(clauses)


def _values_at(doc: Any, path: list[str]) -> list[Any] | None:
    """The values at a dotted path (arrays flattened); ``None`` when the path is absent."""
    if not path:
        return list(doc) if isinstance(doc, list) else [doc]
    if isinstance(doc, list):
        found = [_values_at(item, path) for item in doc]
        present = [v for v in found if v is not None]
        return [x for v in present for x in v] if present else None
    if not isinstance(doc, Mapping) or path[0] not in doc:
        return None
    return _values_at(doc[path[0]], path[1:])


def matches_exactly(doc: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    """Whether ``doc`` holds, for every string filter, exactly one of the wanted values.

    Numbers and bools are compared exactly by the server already. A field absent from the
    document (left out by ``include_fields``/``exclude_fields``) cannot be checked and passes.
    """
    for field, value in filters.items():
        wanted = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
        if not all(isinstance(v, str) for v in wanted):
            continue
        actual = _values_at(doc, [field] if field in doc else field.split("."))
        if actual is not None and not any(a in wanted for a in actual if isinstance(a, str)):
            return False
    return True
