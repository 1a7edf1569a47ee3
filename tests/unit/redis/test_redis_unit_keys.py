"""The key scheme and id grammar: any session id, ``:`` included, round-trips unambiguously."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mas_storage_redis
from mas_storage import StorageDataError
from mas_storage_redis import parse_record_id, record_id, session_key
from mas_storage_redis._keys import check_session_id

TRICKY_SESSION_IDS = [
    "abc",
    "a:b",
    "x:turns",
    "a:turns:3",
    "session:1",
    "session:x:turns:7",
    ":",
    "::turns::",
    "line\nbreak",
    "unicode-ß-中文-🎉",
    "*?[glob]",
    "{hash}tag",
    " ",
]


def test_exports_are_complete() -> None:
    public = {n for n in dir(mas_storage_redis) if not n.startswith("_")}
    assert set(mas_storage_redis.__all__) == public


def test_key_and_id_format() -> None:
    assert session_key("abc") == "session:abc:turns"
    assert record_id("abc", 7) == "session:abc:turns:7"


@pytest.mark.parametrize("sid", TRICKY_SESSION_IDS)
def test_tricky_session_ids_round_trip(sid: str) -> None:
    assert parse_record_id(session_key(sid)) == (sid, None)
    assert parse_record_id(record_id(sid, 3)) == (sid, 3)
    assert parse_record_id(record_id(sid, -2)) == (sid, -2)


def test_colon_ids_keep_turn_and_session_forms_apart() -> None:
    # Turn 3 of session "a" versus the whole session "a:turns:3": different ids, different keys.
    assert parse_record_id("session:a:turns:3") == ("a", 3)
    assert parse_record_id("session:a:turns:3:turns") == ("a:turns:3", None)
    assert parse_record_id("session::turns:turns") == (":turns", None)
    assert session_key("a") != session_key("a:turns:3")


@given(st.text(min_size=1), st.integers(min_value=-(2**63), max_value=2**63))
def test_any_session_id_and_turn_round_trip(sid: str, tid: int) -> None:
    assert parse_record_id(record_id(sid, tid)) == (sid, tid)
    assert parse_record_id(session_key(sid)) == (sid, None)


@given(st.text(min_size=1), st.text(min_size=1))
def test_distinct_session_ids_never_share_a_key(a: str, b: str) -> None:
    assert (session_key(a) == session_key(b)) == (a == b)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "invalid:id:format",
        "session::turns",
        "session::turns:1",
        "session:a:turn:1",
        "session:a:turns:x",
        "session:a:turns:1.5",
        "session:a:turns:",
        "session:a:turns:+1",
        "session:a:turns:1 ",
        "sessions:a:turns",
        "a:turns",
        "session:a",
        "session:a:turns:\u0661",  # ARABIC-INDIC DIGIT ONE: a non-ASCII digit
        "session:a:turns:-",
        "session:a:turns:--1",
        "session:turns",
        "session:turns:1",
        "session:a:turns:" + "9" * 5000,  # beyond int()'s digit limit
        123,
        None,
        b"session:a:turns",
    ],
)
def test_malformed_ids_are_refused(bad: object) -> None:
    with pytest.raises(StorageDataError, match="Malformed Redis record id"):
        parse_record_id(bad)


@pytest.mark.parametrize("bad", ["", None, 5, b"abc", ["a"]])
def test_bad_session_ids_are_refused(bad: object) -> None:
    with pytest.raises(StorageDataError, match="session_id must be a non-empty string"):
        check_session_id(bad)
    with pytest.raises(StorageDataError):
        session_key(bad)  # type: ignore[arg-type]
