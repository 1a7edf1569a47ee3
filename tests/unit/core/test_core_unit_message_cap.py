"""Error messages are bounded: a huge caller value never becomes a huge ``StorageError``.

The core cuts every message longer than ``MAX_MESSAGE_CHARS`` in the middle, keeping its head
(which names the problem) and its tail; the cut never leaves part of a secret that redaction
could then miss, whichever of the two runs first.
"""

from __future__ import annotations

import pickle
import re
from typing import Any

import pytest
from pydantic import SecretStr

from mas_storage import (
    AdapterSettings,
    StorageAdapter,
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageNotFoundError,
    StorageQueryError,
    StorageTimeoutError,
    redact,
)
from mas_storage._exceptions import MAX_MESSAGE_CHARS, cap_message
from mas_storage._validation import QUOTE_CHARS, quote_value

CLASSES = [
    StorageError,
    StorageConnectionError,
    StorageQueryError,
    StorageDataError,
    StorageTimeoutError,
    StorageNotFoundError,
]
#: Hex: no "x", so no run of the filler below can look like a piece of it.
SECRET = "5a7dd33f227d7cedd676af6202f47c3b"
HEAD = "Field 'content' is too long: "
MARKER = re.compile(r"… \[([\d,]+) characters cut\] …")


def _fragments(secret: str, size: int = 4) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def _leaked(text: str, secret: str = SECRET) -> list[str]:
    return [part for part in _fragments(secret) if part in text]


@pytest.mark.parametrize("cls", CLASSES)
def test_a_huge_message_is_cut_in_the_middle_with_its_head_kept(cls: type[StorageError]) -> None:
    original = HEAD + "'" + "é" * 1_048_576 + "' (the end)"
    err = cls(original, backend="postgres", operation="store")
    assert len(err.message) <= MAX_MESSAGE_CHARS
    assert str(err) == err.message and err.args == (err.message,)
    assert err.message.startswith(HEAD)
    assert err.message.endswith(" (the end)")
    marker = MARKER.search(err.message)
    assert marker is not None, err.message[:200]
    kept = len(err.message) - len(marker.group(0))
    assert int(marker.group(1).replace(",", "")) == len(original) - kept
    assert (err.backend, err.operation) == ("postgres", "store")


def test_a_word_crossing_a_cut_point_is_cut_whole() -> None:
    """The one long word (the quoted value) goes; the words around it stay intact."""
    original = HEAD + "a" * 5000 + " tail words"
    message = cap_message(original)
    assert message == f"{HEAD}… [5,000 characters cut] … tail words"


def test_a_message_without_whitespace_is_still_bounded() -> None:
    message = cap_message("z" * 100_000)
    assert message == "… [100,000 characters cut] …"


@pytest.mark.parametrize("length", [0, 1, 80, MAX_MESSAGE_CHARS - 1, MAX_MESSAGE_CHARS])
def test_a_normal_message_is_untouched(length: int) -> None:
    original = ("word " * 500)[:length]
    orig = ValueError("driver")
    err = StorageQueryError(original, backend="neo4j", operation="search", orig=orig)
    assert err.message == str(err) == original
    assert (err.backend, err.operation, err.orig) == ("neo4j", "search", orig)


def test_a_message_just_over_the_limit_is_cut() -> None:
    err = StorageDataError("word " * 401)  # 2,005 characters
    assert len(err.message) <= MAX_MESSAGE_CHARS and MARKER.search(err.message)


@pytest.mark.parametrize("cls", CLASSES)
def test_a_cut_error_pickles_to_the_same_message(cls: type[StorageError]) -> None:
    err = cls(HEAD + "'" + "\x00" * 200_000 + "'", backend="redis", operation="store")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert (str(back), back.message, back.backend, back.operation) == (
        err.message,
        err.message,
        "redis",
        "store",
    )
    assert cap_message(err.message) == err.message  # idempotent: nothing cut twice


def test_non_string_messages_are_kept_as_before() -> None:
    err = StorageError(42)  # type: ignore[arg-type]
    assert err.message == 42 and str(err) == "42"


# -- redaction and the cut ------------------------------------------------------------------------


def _straddling(at: int, total: int = 50_000) -> str:
    """A message of ``total`` characters with a URL carrying ``SECRET`` that starts at ``at``."""
    url = f"postgresql://mas:{SECRET}@127.0.0.1:5432/db"
    return ("x " * total)[:at] + url + " " + "x" * (total - at - len(url) - 1)


#: Positions of the URL around the head's cut point (1,500) and the tail's (the last 400): the
#: secret (17 characters into the URL) crosses a naive cut at 1460, 1470, 49560 and 49570.
CUT_POINTS = [1460, 1470, 1480, 1495, 1500, 49_560, 49_570, 49_590]


@pytest.mark.parametrize("at", CUT_POINTS)
def test_cutting_first_then_redacting_leaves_no_fragment_of_a_secret(at: int) -> None:
    """An adapter's ``_map_error`` builds (and so cuts) its error before the core redacts."""
    cut = StorageConnectionError(_straddling(at)).message
    assert not _leaked(redact(cut, [SECRET]))


@pytest.mark.parametrize("at", CUT_POINTS)
def test_redacting_first_then_cutting_leaves_no_fragment_of_a_secret(at: int) -> None:
    """The core's own order (``translate_error``): redact the driver's text, then build."""
    err = StorageConnectionError(redact(_straddling(at), [SECRET]))
    assert not _leaked(err.message)


class MappingSettings(AdapterSettings):
    password: SecretStr | None = None
    build: bool = False


class MappingAdapter(StorageAdapter):
    """Fails every store with a driver error quoting a huge value and the connection URL."""

    kind = "mapping"
    settings_model = MappingSettings
    config: MappingSettings

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    async def store(self, data: dict[str, Any]) -> str:
        raise RuntimeError(_straddling(int(data["at"])))

    async def retrieve(self, id: str) -> dict[str, Any] | None:
        return None

    async def search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        return []

    async def delete(self, id: str) -> bool:
        return False

    def _map_error(self, exc: Exception, op: str) -> type[StorageError] | StorageError | None:
        if self.config.build:  # the adapter builds the error itself: cut before redaction
            return StorageQueryError(f"the server said: {exc}")
        return None


@pytest.mark.parametrize("build", [False, True], ids=["core-builds", "adapter-builds"])
@pytest.mark.parametrize("at", CUT_POINTS)
async def test_translated_errors_are_bounded_and_carry_no_fragment(at: int, build: bool) -> None:
    adapter = MappingAdapter({"password": SECRET, "build": build})
    await adapter.connect()
    with pytest.raises(StorageError) as caught:
        await adapter.store({"at": at})
    err = caught.value
    assert len(err.message) <= MAX_MESSAGE_CHARS
    assert err.message.startswith("mapping store failed: ")
    assert not _leaked(err.message)
    assert not _leaked(str(err)) and not _leaked(repr(err))


# -- quoting caller values ----------------------------------------------------------------------


class _BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    "value",
    [
        "é" * 1_000_000,
        b"\x00" * 1_000_000,
        list(range(100_000)),
        {str(i): "v" * 10_000 for i in range(1000)},
        10**5000,  # beyond the interpreter's int-to-str digit limit
        _BrokenRepr(),
        [[[[["deep"]]]]],
    ],
    ids=["str", "bytes", "list", "dict", "bigint", "broken-repr", "nested"],
)
def test_quote_value_is_short_whatever_the_value(value: Any) -> None:
    assert len(quote_value(value)) <= QUOTE_CHARS


def test_quote_value_is_repr_for_small_values() -> None:
    assert quote_value("abc") == "'abc'"
    assert quote_value({"a": [1, 2]}) == "{'a': [1, 2]}"
    assert quote_value(None) == "None"
