"""Caller data to Qdrant points and filters, validated before anything is sent.

Every check here raises :class:`~mas_storage.StorageDataError` naming the field at fault, so a
bad record never reaches the backend and nothing is half-written. Nothing mutates its input:
vectors are copied into new lists of floats and metadata into new JSON-normal dicts.

Validation is engine-neutral (:func:`validate_record`, :func:`filter_conditions`); the server
path turns the result into qdrant-client models here (:func:`build_point`,
:func:`build_filter`), the embedded path into Qdrant Edge's own types (``_edge.py``), so both
modes accept and refuse exactly the same input.

The stored payload of a point is always::

    {"content": str, "session_id": str | None, "metadata": {...}, "created_at": RFC 3339 UTC}
"""

from __future__ import annotations

import json
import math
import numbers
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from qdrant_client import models

from mas_storage import StorageDataError

__all__ = [
    "PAYLOAD_FIELDS",
    "RECORD_KEYS",
    "SEARCH_KEYS",
    "TIMESTAMP_FIELD",
    "Condition",
    "PointId",
    "build_filter",
    "build_point",
    "filter_conditions",
    "format_id",
    "parse_id",
    "validate_record",
    "validate_vector",
]

#: The payload field holding the record's creation time (RFC 3339, UTC; datetime-indexed).
TIMESTAMP_FIELD = "created_at"
#: The top-level payload fields every point carries.
PAYLOAD_FIELDS = ("content", "session_id", "metadata", TIMESTAMP_FIELD)
#: The keys ``store`` accepts.
RECORD_KEYS = frozenset({"id", "vector", *PAYLOAD_FIELDS})
#: The keys ``search`` accepts.
SEARCH_KEYS = frozenset(
    {"vector", "limit", "score_threshold", "session_id", "filter", "with_vector"}
)

PointId = int | str
#: One equality condition: a payload path and a value (str, int or bool) or a list of values
#: (only str or only int) of which any matches.
Condition = tuple[str, str | int | bool | list[str] | list[int]]
_FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")
_MAX_UINT64 = 2**64 - 1
#: Qdrant's integer payload values (and so its integer filters) are signed 64-bit.
_INT64 = (-(2**63), 2**63 - 1)
#: A UUID already in the canonical form Qdrant returns: used as is, without a uuid.UUID round trip
#: (1.5 us, which is a third of an embedded lookup by id).
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PLAIN_NUMBERS = frozenset({float, int})
_FLOATS = {float}


# -- ids ---------------------------------------------------------------------------------------


def parse_id(value: Any) -> PointId:
    """A Qdrant point id from a UUID (any spelling ``uuid.UUID`` reads) or an unsigned integer.

    UUIDs are returned in canonical hyphenated lower-case form, integers as ``int``. Qdrant
    accepts nothing else, so anything else is a :class:`StorageDataError`.
    """
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= _MAX_UINT64:
            return value
        raise StorageDataError(f"Point id {value} is out of range: ids are unsigned 64-bit ints")
    if isinstance(value, str):
        if len(value) == 36 and _CANONICAL_UUID.fullmatch(value):
            return value
        text = value.strip()
        if text.isdigit():
            return parse_id(int(text))
        try:
            return str(uuid.UUID(text))
        except ValueError:
            pass
    raise StorageDataError(
        f"Malformed point id {value!r}: Qdrant ids are UUIDs or unsigned integers"
    )


def format_id(point_id: Any) -> str:
    """The id as the adapter returns it: always a string."""
    return str(point_id)


# -- vectors -----------------------------------------------------------------------------------


def validate_vector(vector: Any, size: int, *, field: str = "vector") -> list[float]:
    """A copy of ``vector`` as ``size`` finite floats, or :class:`StorageDataError`.

    Accepts a list or tuple of real numbers, or anything with ``tolist()`` (a NumPy array).
    Booleans, strings, NaN and infinities are refused, each error naming the position.
    """
    made = False  # the list was made here from an array: no second copy is needed
    only_floats = False  # a 1-D float array (what embedding models return) holds only floats
    if not isinstance(vector, (list, tuple)) and hasattr(vector, "tolist"):
        dtype = getattr(vector, "dtype", None)
        only_floats = getattr(dtype, "kind", None) == "f" and getattr(vector, "ndim", 0) == 1
        vector = vector.tolist()
        made = type(vector) is list
    if not isinstance(vector, (list, tuple)):
        raise StorageDataError(
            f"'{field}' must be a list of {size} numbers, got {type(vector).__name__}"
        )
    if len(vector) != size:
        raise StorageDataError(
            f"'{field}' has {len(vector)} dimensions; the collection expects {size}"
        )
    kinds = _FLOATS if made and only_floats else set(map(type, vector))
    out: list[float]
    if kinds == _FLOATS:  # the common case: copied as it is (once)
        out = vector if made and isinstance(vector, list) else list(vector)
    else:
        if not kinds <= _PLAIN_NUMBERS:  # the slow path only for odd input
            for i, x in enumerate(vector):
                if isinstance(x, bool) or not isinstance(x, numbers.Real):
                    raise StorageDataError(
                        f"'{field}[{i}]' must be a number, got {type(x).__name__}"
                    )
        out = list(map(float, vector))
    if not math.isfinite(sum(out)):  # a NaN or an infinity makes the sum non-finite
        for i, value in enumerate(out):
            if not math.isfinite(value):
                raise StorageDataError(
                    f"'{field}[{i}]' is {value}: NaN and infinite values are not allowed"
                )
    return out


# -- payload -----------------------------------------------------------------------------------


def _timestamp(value: Any) -> str:
    """An RFC 3339 UTC string from an aware datetime or an ISO string with an offset."""
    if value is None:
        return datetime.now(UTC).isoformat()
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise StorageDataError(
                f"'{TIMESTAMP_FIELD}' is not an ISO 8601 timestamp: {value!r}"
            ) from None
    if not isinstance(value, datetime):
        raise StorageDataError(
            f"'{TIMESTAMP_FIELD}' must be a datetime or an ISO 8601 string, "
            f"got {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise StorageDataError(
            f"'{TIMESTAMP_FIELD}' must be timezone-aware (for example datetime.now(UTC))"
        )
    return value.astimezone(UTC).isoformat()


def _metadata(value: Any) -> dict[str, Any]:
    """A JSON-normal copy of the metadata mapping (string keys, finite numbers)."""
    if value is None:
        return {}
    if type(value) is not dict and not isinstance(value, Mapping):
        raise StorageDataError(f"'metadata' must be a mapping, got {type(value).__name__}")
    for key, item in value.items():  # one pass: plain flat metadata is copied as it is
        if type(key) is not str or not key.isascii() or not _json_plain(item):
            break
    else:
        return dict(value)  # what the JSON round trip below would give, five times faster
    bad_keys = [k for k in value if not isinstance(k, str)]
    if bad_keys:
        raise StorageDataError(f"'metadata' keys must be strings, got {bad_keys[0]!r}")
    try:
        text = json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StorageDataError(f"'metadata' is not JSON-serializable: {exc}") from None
    copied: dict[str, Any] = json.loads(text, parse_int=_payload_int)
    return copied


def _json_plain(value: Any) -> bool:
    """Whether a JSON round trip gives ``value`` back unchanged (a flat, plain scalar)."""
    kind = type(value)
    if kind is str:
        return bool(value.isascii())
    if kind is int:
        return bool(_INT64[0] <= value <= _MAX_UINT64)
    if kind is float:
        return math.isfinite(value)
    return kind is bool or value is None


def _payload_int(literal: str) -> int:
    """Qdrant keeps payload integers in 64 bits (signed, or unsigned when positive)."""
    value = int(literal)
    if not _INT64[0] <= value <= _MAX_UINT64:
        raise StorageDataError(
            f"'metadata' holds the integer {literal[:40]}, beyond 64 bits: store it as a string"
        )
    return value


def _optional_str(data: Mapping[str, Any], key: str, default: str | None) -> str | None:
    value = data.get(key, default)
    if value is not None and not isinstance(value, str):
        raise StorageDataError(f"'{key}' must be a string, got {type(value).__name__}")
    return value


def validate_record(data: Any, size: int) -> tuple[PointId, list[float], dict[str, Any]]:
    """Validate one record: ``(id, vector, payload)``; the id is the caller's or a new UUID4."""
    if type(data) is not dict and not isinstance(data, Mapping):
        raise StorageDataError(f"A record must be a mapping, got {type(data).__name__}")
    unknown = (
        [] if data.keys() <= RECORD_KEYS else sorted(str(k) for k in data if k not in RECORD_KEYS)
    )
    if unknown:
        raise StorageDataError(
            f"Unknown record fields: {', '.join(unknown)} (allowed: "
            f"{', '.join(sorted(RECORD_KEYS))}; put anything else in 'metadata')"
        )
    if "vector" not in data:
        raise StorageDataError("Missing required fields: vector")
    point_id = parse_id(data["id"]) if data.get("id") is not None else str(uuid.uuid4())
    payload = {
        "content": _optional_str(data, "content", "") or "",
        "session_id": _optional_str(data, "session_id", None),
        "metadata": _metadata(data.get("metadata")),
        TIMESTAMP_FIELD: _timestamp(data.get(TIMESTAMP_FIELD)),
    }
    return point_id, validate_vector(data["vector"], size), payload


def build_point(data: Any, size: int) -> models.PointStruct:
    """Validate one record and build its qdrant-client point (server mode)."""
    point_id, vector, payload = validate_record(data, size)
    # Every field is validated above: skip pydantic's second pass over the 384 floats.
    return models.PointStruct.model_construct(id=point_id, vector=vector, payload=payload)


# -- filters -----------------------------------------------------------------------------------


def _field_key(key: Any) -> str:
    """The payload path a filter key names: top-level fields as is, anything else in metadata."""
    if not isinstance(key, str) or not _FIELD_PATH.match(key):
        raise StorageDataError(
            f"Filter key {key!r} is not a field name (letters, digits, '_', '-', dotted paths)"
        )
    head = key.split(".", 1)[0]
    if head in PAYLOAD_FIELDS:
        return key
    return f"metadata.{key}"


def _int64(value: int, key: str) -> int:
    if not _INT64[0] <= value <= _INT64[1]:
        raise StorageDataError(f"Filter '{key}': integers are signed 64-bit, got {value}")
    return value


def _condition(key: str, value: Any) -> Condition:
    """An equality condition; a list of values matches any of them."""
    if isinstance(value, (str, bool)):
        return key, value
    if isinstance(value, int):
        return key, _int64(value, key)
    if isinstance(value, (list, tuple, set, frozenset)):
        values = list(value)
        if values and all(isinstance(v, str) for v in values):
            return key, values
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return key, [_int64(v, key) for v in values]
        raise StorageDataError(
            f"Filter '{key}': a list must be non-empty and hold only strings or only integers"
        )
    raise StorageDataError(
        f"Filter '{key}': equality matches strings, integers and booleans, "
        f"got {type(value).__name__}"
    )


def filter_conditions(
    session_id: Any = None, equals: Mapping[str, Any] | None = None
) -> list[Condition]:
    """The equality conditions (combined with AND) of a ``session_id`` and a ``filter``.

    ``equals`` maps payload fields to values. Keys naming a top-level field (``session_id``,
    ``content``, ``created_at``, ``metadata.x``) are used as they are; any other key is a
    metadata field (``{"topic": "billing"}`` matches ``metadata.topic``).
    """
    conditions: list[Condition] = []
    if session_id is not None:
        if not isinstance(session_id, str):
            raise StorageDataError(
                f"'session_id' must be a string, got {type(session_id).__name__}"
            )
        conditions.append(("session_id", session_id))
    if equals is not None:
        if not isinstance(equals, Mapping):
            raise StorageDataError(f"'filter' must be a mapping, got {type(equals).__name__}")
        conditions.extend(_condition(_field_key(k), v) for k, v in equals.items())
    return conditions


def build_filter(
    session_id: Any = None, equals: Mapping[str, Any] | None = None
) -> models.Filter | None:
    """The qdrant-client ``must`` filter (server mode), or ``None`` when there are none."""
    must: list[models.Condition] = []
    for key, value in filter_conditions(session_id, equals):
        match: models.Match = (
            models.MatchAny(any=value)
            if isinstance(value, list)
            else models.MatchValue(value=value)
        )
        must.append(models.FieldCondition(key=key, match=match))
    return models.Filter(must=must) if must else None
