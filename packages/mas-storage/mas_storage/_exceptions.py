"""The storage error hierarchy, drawn once.

    StorageError
    ├── StorageConnectionError   backend unreachable, refused, or authentication failed
    ├── StorageQueryError        the backend rejected or failed the query itself
    ├── StorageDataError         caller data is invalid, or violates a constraint
    ├── StorageTimeoutError      an operation ran past its time budget
    └── StorageNotFoundError     a resource the operation needs does not exist

Every adapter raises only these. A driver exception is translated at one choke point
(:mod:`mas_storage._operations`) and kept as ``__cause__`` and ``.orig``. Messages never carry a
password or an API key. The names never shadow builtins (no bare ``ConnectionError``).

Messages are bounded: they often quote what the caller passed, and a 1 MB value must not become
a 1 MB message in every log line, metrics record and traceback. A message longer than
:data:`MAX_MESSAGE_CHARS` is cut in the middle (:func:`cap_message`): the head, which names the
problem, and the tail survive, with a marker saying how much was cut.
"""

from __future__ import annotations

__all__ = [
    "MAX_MESSAGE_CHARS",
    "StorageConnectionError",
    "StorageDataError",
    "StorageError",
    "StorageNotFoundError",
    "StorageQueryError",
    "StorageTimeoutError",
    "cap_message",
]

#: The longest message a :class:`StorageError` keeps (characters, marker included).
MAX_MESSAGE_CHARS = 2000
#: What a cut message keeps of the original: its start and its end (the marker goes between).
_HEAD_CHARS = 1500
_TAIL_CHARS = 400


def cap_message(message: str) -> str:
    """``message`` unchanged if it has at most :data:`MAX_MESSAGE_CHARS` characters, else its
    head and tail around a marker such as ``… [1,048,321 characters cut] …``.

    A cut never splits a word (a run of non-whitespace): a word crossing either cut point is
    cut whole. The core redacts secrets before it builds an error from a driver's message
    (``_operations.translate_error``), but an adapter's ``_map_error`` may build its error
    first, so that redaction then sees the cut text: a password or a URL cut in two would leave
    a fragment that redaction, which matches whole secrets, cannot recognise. So the cut removes
    whole words only (secrets, URLs and tokens contain no whitespace). Idempotent: a cut
    message is short enough to be kept as it is.
    """
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    head_end, tail_start = _HEAD_CHARS, len(message) - _TAIL_CHARS
    # A cut point inside a word moves to the word's edge, so that the whole word is cut.
    while head_end > 0 and not message[head_end].isspace() and not message[head_end - 1].isspace():
        head_end -= 1
    end = len(message)
    while (
        tail_start < end
        and not message[tail_start - 1].isspace()
        and not message[tail_start].isspace()
    ):
        tail_start += 1
    cut = tail_start - head_end
    return f"{message[:head_end]}… [{cut:,} characters cut] …{message[tail_start:]}"


class StorageError(Exception):
    """Base of every storage failure; catch this to handle any of them."""

    def __init__(
        self,
        message: str = "",
        *,
        backend: str | None = None,
        operation: str | None = None,
        orig: BaseException | None = None,
    ) -> None:
        if isinstance(message, str):
            message = cap_message(message)
        super().__init__(message)
        self.message = message
        self.backend = backend
        self.operation = operation
        #: The driver exception this error translates, if any (also ``__cause__``).
        self.orig = orig

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only attributes would be lost by the default pickling of exceptions.
        return (_rebuild, (type(self), self.message, self.backend, self.operation))


def _rebuild(
    cls: type[StorageError], message: str, backend: str | None, operation: str | None
) -> StorageError:
    return cls(message, backend=backend, operation=operation)


class StorageConnectionError(StorageError):
    """The backend cannot be reached, refused the connection, or refused the credentials."""


class StorageQueryError(StorageError):
    """The backend rejected or failed the query (syntax, read-only violation, server error)."""


class StorageDataError(StorageError):
    """Caller data is invalid: missing or mistyped fields, bad ids, constraint violations."""


class StorageTimeoutError(StorageError):
    """An operation exceeded its time budget (connect, query, or lock acquisition)."""


class StorageNotFoundError(StorageError):
    """A resource that the operation requires (record, endpoint, collection) does not exist."""
