"""Records in and out: validation of caller data, and rows turned back into dicts.

Pure functions, no I/O, so every rule is unit-tested without a server. The caller's dict is
never modified: each function builds a new record or dict. A validated record is a named
tuple, :class:`TurnRow` or :class:`FactRow`: its fields are the insert columns in order (so it
binds as the statement's parameters and ``COPY``'s row as it is), read by name elsewhere.

Time rules:

* Naive datetimes are rejected (:class:`StorageDataError`), never guessed as UTC or local time:
  a naive value is ambiguous, and a silent guess would move an expiry by hours. Aware datetimes
  of any zone, and ISO-8601 strings with an offset, are accepted and stored as instants.
* ``created_at`` defaults to now (UTC); a caller may pass the real time of an imported record.
* ``ttl_expires_at`` absent means the table's default lifetime after ``created_at`` (24 h for
  turns, 7 days for facts); explicit ``None`` means never expires.
* ``ttl_expires_at`` must be later than ``created_at`` (the schema's ``valid_ttl`` check). A new
  record cannot be born expired; to keep an expired record, pass its real ``created_at``.

A fact may carry an ``idempotency_key`` (migration 0002): a string of 1 to 255 characters
without NUL, unique per session, or ``None`` (no key).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal, NamedTuple, overload

from mas_storage import StorageDataError

from ._config import ACTIVE_CONTEXT, DEFAULT_TTL, WORKING_MEMORY

#: The timestamp columns of both tables (``row_to_dict`` converts exactly these).
_TIME_COLUMNS: Final = ("created_at", "updated_at", "ttl_expires_at")

__all__ = [
    "COLUMNS",
    "IDEMPOTENCY_KEY_MAX",
    "REQUIRED",
    "FactRow",
    "Row",
    "TurnRow",
    "parse_id",
    "prepare_record",
    "row_to_dict",
    "to_aware_datetime",
    "validate_idempotency_key",
    "validate_session_id",
    "validate_turn_id",
]


class TurnRow(NamedTuple):
    """A validated ``active_context`` row: its insert columns, in order."""

    session_id: str
    turn_id: int
    content: str
    metadata: Any  #: JSON text of an object, or what the caller's ``wrap_json`` made of it
    created_at: datetime
    ttl_expires_at: datetime | None


class FactRow(NamedTuple):
    """A validated ``working_memory`` row: its insert columns, in order."""

    session_id: str
    fact_type: str
    content: str
    confidence: float
    source_turn_ids: list[int]
    metadata: Any  #: JSON text of an object, or what the caller's ``wrap_json`` made of it
    created_at: datetime
    updated_at: datetime
    ttl_expires_at: datetime | None
    idempotency_key: str | None  #: migration 0002


Row = TurnRow | FactRow

#: Insert columns per table: the fields of its row type.
COLUMNS: Final = {ACTIVE_CONTEXT: TurnRow._fields, WORKING_MEMORY: FactRow._fields}
REQUIRED: Final = {
    ACTIVE_CONTEXT: ("session_id", "turn_id", "content"),
    WORKING_MEMORY: ("session_id", "fact_type", "content"),
}
_SESSION_ID_MAX = 255  # VARCHAR(255)
_FACT_TYPE_MAX = 50  # VARCHAR(50)
IDEMPOTENCY_KEY_MAX: Final = 255  # CHECK valid_idempotency_key (characters)
_INT4_MAX = 2**31 - 1
#: One encoder for every record (json.dumps with options builds a new one per call). NaN and
#: Infinity are refused: PostgreSQL's jsonb has no such numbers.
_encode_json = json.JSONEncoder(allow_nan=False).encode


def to_aware_datetime(value: Any, field: str) -> datetime:
    """An aware datetime from a datetime or an ISO-8601 string; naive values are refused."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise StorageDataError(
                f"Field '{field}' is not an ISO-8601 timestamp: {value!r}"
            ) from None
    if not isinstance(value, datetime):
        raise StorageDataError(
            f"Field '{field}' must be a timezone-aware datetime, got {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise StorageDataError(
            f"Field '{field}' is a naive datetime; pass a timezone-aware one, e.g. "
            "datetime.now(UTC) (naive times are refused rather than guessed)"
        )
    return value


def validate_session_id(value: Any) -> str:
    """A non-empty string of at most 255 characters (the column is VARCHAR(255))."""
    if not isinstance(value, str) or not value:
        raise StorageDataError("Field 'session_id' must be a non-empty string")
    if len(value) > _SESSION_ID_MAX:
        raise StorageDataError(f"Field 'session_id' is longer than {_SESSION_ID_MAX} characters")
    return value


def validate_idempotency_key(value: Any) -> str | None:
    """A fact's idempotency key: ``None``, or 1 to 255 characters without NUL."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise StorageDataError(
            "Field 'idempotency_key' must be a non-empty string (or None for no key), got "
            + (repr(value) if isinstance(value, str) else type(value).__name__)
        )
    if len(value) > IDEMPOTENCY_KEY_MAX:
        raise StorageDataError(
            f"Field 'idempotency_key' is longer than {IDEMPOTENCY_KEY_MAX} characters"
        )
    if "\x00" in value:
        raise StorageDataError("Field 'idempotency_key' contains a NUL character")
    return value


def validate_turn_id(value: Any) -> int:
    """A turn number: an int in [0, 2**31 - 1] (the schema's ``valid_turn_id`` check)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise StorageDataError(f"Field 'turn_id' must be an int, got {type(value).__name__}")
    if not 0 <= value <= _INT4_MAX:
        raise StorageDataError(f"Field 'turn_id' must be between 0 and {_INT4_MAX}, got {value}")
    return value


def parse_id(value: Any) -> int:
    """A record id as returned by ``store`` (a string of digits) or an int."""
    if isinstance(value, bool):
        raise StorageDataError("Record id must be a string of digits or an int, not a bool")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise StorageDataError(
            f"Invalid record id {value!r}: PostgreSQL ids are positive integers, e.g. '42'"
        )
    if not 1 <= number <= _INT4_MAX:
        raise StorageDataError(f"Invalid record id {value!r}: out of range")
    return number


def _text(data: Mapping[str, Any], field: str) -> str:
    value = data[field]
    if not isinstance(value, str):
        raise StorageDataError(f"Field '{field}' must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise StorageDataError(f"Field '{field}' contains a NUL character")
    return value


def _metadata(data: Mapping[str, Any]) -> str:
    """The metadata as JSON text (a JSON object), checked here rather than by the server."""
    value = data.get("metadata")
    if value is None:
        value = {}
    if type(value) is not dict and not isinstance(value, Mapping):  # fast path: a plain dict
        raise StorageDataError(f"Field 'metadata' must be a dict, got {type(value).__name__}")
    try:
        return _encode_json(value)
    except (TypeError, ValueError) as exc:
        raise StorageDataError(f"Field 'metadata' is not JSON-serialisable: {exc}") from None


def _confidence(data: Mapping[str, Any]) -> float:
    value = data.get("confidence", 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StorageDataError(f"Field 'confidence' must be a number, got {type(value).__name__}")
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise StorageDataError(f"Field 'confidence' must be between 0.0 and 1.0, got {value}")
    return float(value)


def _fact_type(data: Mapping[str, Any]) -> str:
    value = _text(data, "fact_type")
    if not value:
        raise StorageDataError("Field 'fact_type' must not be empty")
    if len(value) > _FACT_TYPE_MAX:
        raise StorageDataError(f"Field 'fact_type' is longer than {_FACT_TYPE_MAX} characters")
    return value


def _source_turn_ids(data: Mapping[str, Any]) -> list[int]:
    value = data.get("source_turn_ids")
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise StorageDataError(
            f"Field 'source_turn_ids' must be a list of ints, got {type(value).__name__}"
        )
    out = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= _INT4_MAX:
            raise StorageDataError(f"Field 'source_turn_ids' holds a non-turn id: {item!r}")
        out.append(item)
    return out


def _times(data: Mapping[str, Any], table: str, now: datetime) -> tuple[datetime, datetime | None]:
    created = data.get("created_at")
    created_at = now if created is None else to_aware_datetime(created, "created_at")
    if "ttl_expires_at" not in data:
        return created_at, created_at + DEFAULT_TTL[table]
    raw = data["ttl_expires_at"]
    if raw is None:
        return created_at, None
    ttl = to_aware_datetime(raw, "ttl_expires_at")
    if ttl <= created_at:
        hint = (
            "a new record cannot be born expired; to import an expired record, pass its real "
            "'created_at' (timezone-aware) as well"
            if created is None
            else "pass a later 'ttl_expires_at' or None (never expires)"
        )
        raise StorageDataError(
            f"'ttl_expires_at' ({ttl.isoformat()}) must be later than 'created_at' "
            f"({created_at.isoformat()}), the schema's valid_ttl rule: {hint}"
        )
    return created_at, ttl


#: What turns a record's metadata JSON text into the value bound for ``metadata``.
_Wrap = Callable[[str], Any]


def _identity(text: str) -> Any:
    return text


def _checked(data: Any, table: str) -> Mapping[str, Any]:
    """``data`` as a mapping with every required key and no unknown one.

    Unknown keys are refused: a typo such as ``ttl_expire_at`` would otherwise be dropped
    silently.
    """
    if type(data) is not dict and not isinstance(data, Mapping):  # fast path: a plain dict
        raise StorageDataError(f"A record must be a dict, got {type(data).__name__}")
    columns = COLUMNS[table]
    unknown = set(data) - set(columns)
    if unknown:
        raise StorageDataError(
            f"Unknown fields for {table}: {', '.join(sorted(map(str, unknown)))}; "
            f"allowed: {', '.join(columns)}"
        )
    missing = [field for field in REQUIRED[table] if field not in data]
    if missing:
        raise StorageDataError(f"Missing required fields for {table}: {', '.join(missing)}")
    return data


@overload
def prepare_record(
    data: Any,
    table: Literal["active_context"],
    now: datetime | None = ...,
    *,
    wrap_json: _Wrap = ...,
) -> TurnRow: ...
@overload
def prepare_record(
    data: Any,
    table: Literal["working_memory"],
    now: datetime | None = ...,
    *,
    wrap_json: _Wrap = ...,
) -> FactRow: ...
@overload
def prepare_record(
    data: Any, table: str, now: datetime | None = ..., *, wrap_json: _Wrap = ...
) -> Row: ...
def prepare_record(
    data: Any, table: str, now: datetime | None = None, *, wrap_json: _Wrap = _identity
) -> Row:
    """Validate one record for ``table``: its :class:`TurnRow` or :class:`FactRow`.

    ``wrap_json`` wraps the metadata's JSON text for the driver (the adapter passes psycopg's
    ``Jsonb``), so the row binds as it is.
    """
    data = _checked(data, table)
    session_id = validate_session_id(data["session_id"])
    content = _text(data, "content")
    metadata = wrap_json(_metadata(data))
    created_at, ttl = _times(data, table, now or datetime.now(UTC))
    if table == ACTIVE_CONTEXT:
        turn_id = validate_turn_id(data["turn_id"])
        return TurnRow(session_id, turn_id, content, metadata, created_at, ttl)
    updated = data.get("updated_at")
    updated_at = created_at if updated is None else to_aware_datetime(updated, "updated_at")
    return FactRow(
        session_id,
        _fact_type(data),
        content,
        _confidence(data),
        _source_turn_ids(data),
        metadata,
        created_at,
        updated_at,
        ttl,
        validate_idempotency_key(data.get("idempotency_key")),
    )


def row_to_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A result row as the API returns it: ``id`` as a string, ISO timestamps, metadata dict.

    The adapter's connections already read ``timestamptz`` as ISO strings (:mod:`._isotime`);
    a ``datetime`` (from any other connection) is converted here. Runs once per row returned,
    so it touches only the columns that need it.
    """
    out = dict(row)
    for key in _TIME_COLUMNS:
        value = out.get(key)
        if isinstance(value, datetime):
            out[key] = value.astimezone(UTC).isoformat()
    if "metadata" in out:
        value = out["metadata"]
        if value is None:
            out["metadata"] = {}
        elif isinstance(value, str | bytes):
            out["metadata"] = json.loads(value)
    if "id" in out:
        out["id"] = str(out["id"])
    return out
