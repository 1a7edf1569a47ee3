"""The cached turn: validation, the JSON form Redis holds, decoding, and search windows.

A turn is stored as compact JSON ``{"session_id", "turn_id", "content", "timestamp",
"metadata"}``: strict (NaN and Infinity are refused) and ASCII-escaped, so any Python string,
lone surrogates included, reads back unchanged, with one exception JSON imposes: a high
surrogate directly followed by a low one (``"\\ud800\\udc00"``) reads back as the one
character the pair encodes (``"\\U00010000"``). Every problem raises
:class:`~mas_storage.StorageDataError` naming it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mas_storage import StorageDataError

from ._keys import session_key

__all__ = ["decode_turn", "decode_turns", "encode_turn", "list_range"]

_HUGE = 2**62
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_loads = json.loads


def encode_turn(
    session_id: Any,
    turn_id: Any,
    content: Any,
    metadata: Any,
    timestamp: Any,
    *,
    key: str | None = None,
    now: str | None = None,
) -> tuple[str, str, str]:
    """Validate one turn and return ``(key, json_payload, record_id)``. Never mutates input.

    A batch passes its session's ``key`` once built (``session_key(session_id)``) and ``now``,
    the ISO time its turns without a ``timestamp`` get: one clock read per batch, not per turn.
    """
    if key is None:
        key = session_key(session_id)
    if type(turn_id) is not int:
        if not isinstance(turn_id, int) or isinstance(turn_id, bool):
            raise StorageDataError(f"turn_id must be an int, got {type(turn_id).__name__}")
        turn_id = int(turn_id)
    if not isinstance(content, str):
        raise StorageDataError(f"content must be a str, got {type(content).__name__}")
    if metadata is None:
        metadata = {}
    elif type(metadata) is not dict:
        if not isinstance(metadata, Mapping):
            raise StorageDataError(f"metadata must be a mapping, got {type(metadata).__name__}")
        metadata = dict(metadata)
    entry = {
        "session_id": session_id,
        "turn_id": turn_id,
        "content": content,
        "timestamp": now if timestamp is None and now is not None else _timestamp(timestamp),
        "metadata": metadata,
    }
    try:
        payload = _dumps(entry)
    except (TypeError, ValueError) as exc:  # unserialisable value, NaN, circular reference
        raise StorageDataError(
            f"turn {turn_id} of session {session_id!r} is not JSON-serialisable: {exc}"
        ) from exc
    return key, payload, f"{key}:{turn_id}"


def _timestamp(value: Any) -> str:
    """An ISO 8601 string with a UTC offset; now (UTC) when ``value`` is ``None``."""
    if value is None:
        return datetime.now(UTC).isoformat()
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise StorageDataError(f"timestamp {value!r} is not an ISO 8601 date-time") from None
    else:
        raise StorageDataError(
            f"timestamp must be a datetime or an ISO 8601 str, got {type(value).__name__}"
        )
    if parsed.utcoffset() is None:
        raise StorageDataError(f"timestamp {value!r} must be timezone-aware (e.g. UTC)")
    return value if isinstance(value, str) else value.isoformat()


def decode_turn(raw: bytes | str, key: str) -> dict[str, Any]:
    """Decode one list element of ``key``; a corrupt one raises :class:`StorageDataError`."""
    try:
        turn = _loads(raw)
    except ValueError as exc:
        raise _corrupt(key, exc) from exc
    if type(turn) is not dict:
        raise _corrupt(key, f"a JSON {type(turn).__name__}, not an object")
    return turn


def decode_turns(items: list[Any], key: str) -> list[dict[str, Any]]:
    """Decode a list's elements; a corrupt one raises :class:`StorageDataError`."""
    try:
        turns = [_loads(raw) for raw in items]
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise _corrupt(key, exc) from exc
    for turn in turns:
        if type(turn) is not dict:
            raise _corrupt(key, f"a JSON {type(turn).__name__}, not an object")
    return turns


def _corrupt(key: str, why: object) -> StorageDataError:
    """Not JSON, not UTF-8, or not a JSON object: written by something other than the adapter."""
    return StorageDataError(f"Corrupt entry in Redis list {key!r}: {why}")


def list_range(limit: Any, offset: Any) -> tuple[int, int, int | None] | None:
    """``(start, end, cap)`` such that ``LRANGE start end`` cut to ``cap`` items (if not
    ``None``) is ``turns[offset:][:limit]``; ``None`` when nothing is asked for.
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise StorageDataError(f"limit must be an int >= 0, got {limit!r}")
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise StorageDataError(f"offset must be an int, got {offset!r}")
    if limit == 0:
        return None
    # LRANGE takes signed 64-bit indexes and a list holds fewer than 2**32 items: clamping
    # changes no result, and Redis no longer refuses a huge limit or offset.
    limit = min(limit, _HUGE)
    offset = max(-_HUGE, min(offset, _HUGE))
    if offset >= 0:
        return offset, offset + limit - 1, None
    # The last -offset turns (all of them when the list is shorter), then the first `limit`:
    # Redis cannot express that without knowing the length, so cut the (small) reply here.
    return offset, -1, (limit if limit < -offset else None)
