"""The key scheme and the record-id grammar of the turn cache.

One Redis LIST per session::

    session:{session_id}:turns            the session's cached turns, most recent first
    session:{session_id}:turns:{turn_id}  the id of one turn (what ``store()`` returns)

**Session ids are used unchanged, ``:`` included.** No encoding is needed, because:

* the key is ``"session:" + session_id + ":turns"``, which is one-to-one: two different
  session ids never share a key, whatever characters they hold;
* ids are parsed from the right. Turn ids are integers, so an id ending in ``:turns`` names a
  whole session and an id ending in ``:turns:<integer>`` names one turn; no string is both.
  ``session:a:turns:3`` is turn 3 of session ``a``; ``session:a:turns:3:turns`` is the whole
  session ``a:turns:3``.

The only session id refused is the empty one (and anything that is not a ``str``).
"""

from __future__ import annotations

from mas_storage import StorageDataError

__all__ = ["check_session_id", "parse_record_id", "record_id", "session_key"]

KEY_PREFIX = "session:"
KEY_SUFFIX = ":turns"
_PREFIX_LEN = len(KEY_PREFIX)
_SUFFIX_LEN = len(KEY_SUFFIX)
_MAX_DIGITS = 1000  # well inside int()'s limit on str conversions (4300 digits)


def check_session_id(session_id: object) -> str:
    """Return ``session_id`` if it is a non-empty ``str``; raise :class:`StorageDataError`."""
    if not isinstance(session_id, str) or not session_id:
        raise StorageDataError(f"session_id must be a non-empty string, got {session_id!r}")
    return session_id


def session_key(session_id: str) -> str:
    """The Redis key of a session's turn list: ``session:{session_id}:turns``."""
    return f"{KEY_PREFIX}{check_session_id(session_id)}{KEY_SUFFIX}"


def record_id(session_id: str, turn_id: int) -> str:
    """The id of one cached turn: ``session:{session_id}:turns:{turn_id}``."""
    return f"{session_key(session_id)}:{turn_id}"


def parse_record_id(id: object) -> tuple[str, int | None]:
    """Split a record id into ``(session_id, turn_id)``; ``turn_id`` is ``None`` for a session id.

    Raises :class:`StorageDataError` for anything else (naming the two accepted forms).
    """
    if isinstance(id, str) and id.startswith(KEY_PREFIX):
        # Plain string operations rather than a regex: this runs on every retrieve/delete.
        head, _, tail = id.rpartition(":")
        if tail == "turns":  # session:{sid}:turns
            if len(head) > _PREFIX_LEN:
                return head[_PREFIX_LEN:], None
        elif len(head) > _PREFIX_LEN + _SUFFIX_LEN and head.endswith(KEY_SUFFIX):
            digits = tail[1:] if tail[:1] == "-" else tail
            if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_DIGITS:
                return head[_PREFIX_LEN:-_SUFFIX_LEN], int(tail)  # session:{sid}:turns:{int}
    raise StorageDataError(
        f"Malformed Redis record id {id!r}: expected 'session:{{session_id}}:turns' or "
        "'session:{session_id}:turns:{turn_id}' with an integer turn_id"
    )
