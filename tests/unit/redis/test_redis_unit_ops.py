"""Store, retrieve, search, delete, batches and utilities: what the adapter sends to Redis."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest

from mas_storage import StorageDataError
from mas_storage_redis import RedisAdapter

KEY = "session:s-1:turns"


def without_dedup(commands: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The commands of a write minus its ``LREM``s, after checking that they come just before
    each ``LPUSH`` and remove exactly its entries (a replayed write is never cached twice)."""
    out: list[tuple[Any, ...]] = []
    removed: list[tuple[Any, ...]] = []
    for command in commands:
        if command[0] == "lrem":
            removed.append(command)
            continue
        if command[0] == "lpush":
            assert removed == [("lrem", command[1], 0, value) for value in command[2:]]
            removed = []
        out.append(command)
    assert removed == []
    return out


def sent_payload(fake: Any, index: int = 0) -> dict[str, Any]:
    """The JSON object of the LPUSH of the ``index``-th executed pipeline."""
    commands = without_dedup(fake.executed[index][1])
    assert commands[0][0] == "lpush"
    return json.loads(commands[0][2])  # type: ignore[no-any-return]


# -- store ---------------------------------------------------------------------------------------


async def test_store_is_one_transaction_push_trim_expire(adapter: RedisAdapter, fake: Any) -> None:
    data = {"session_id": "s-1", "turn_id": 7, "content": "Hello", "metadata": {"role": "user"}}
    original = json.loads(json.dumps(data))
    rid = await adapter.store(data)
    assert rid == "session:s-1:turns:7"
    assert data == original  # never mutated
    assert len(fake.executed) == 1
    transaction, commands = fake.executed[0]
    commands = without_dedup(commands)
    assert transaction is True
    assert [c[0] for c in commands] == ["lpush", "ltrim", "expire"]
    assert commands[0][1] == KEY
    assert commands[1] == ("ltrim", KEY, 0, 4)
    assert commands[2] == ("expire", KEY, 3600)
    payload = sent_payload(fake)
    assert payload["session_id"] == "s-1"
    assert payload["turn_id"] == 7
    assert payload["content"] == "Hello"
    assert payload["metadata"] == {"role": "user"}
    stamp = datetime.fromisoformat(payload["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)
    assert fake.single_calls() == []


async def test_store_keeps_only_the_known_fields(adapter: RedisAdapter, fake: Any) -> None:
    await adapter.store({"session_id": "s-1", "turn_id": 1, "content": "", "role": "user"})
    payload = sent_payload(fake)
    assert set(payload) == {"session_id", "turn_id", "content", "timestamp", "metadata"}
    assert payload["content"] == ""
    assert payload["metadata"] == {}


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (datetime(2025, 10, 20, 10, 3, tzinfo=UTC), "2025-10-20T10:03:00+00:00"),
        (
            datetime(2025, 10, 20, 12, 3, tzinfo=timezone(timedelta(hours=2))),
            "2025-10-20T12:03:00+02:00",
        ),
        ("2025-10-20T10:03:00Z", "2025-10-20T10:03:00Z"),
        ("2025-10-20T10:03:00.123+00:00", "2025-10-20T10:03:00.123+00:00"),
    ],
)
async def test_store_timestamps(adapter: RedisAdapter, fake: Any, given: Any, stored: str) -> None:
    await adapter.store({"session_id": "s-1", "turn_id": 1, "content": "x", "timestamp": given})
    assert sent_payload(fake)["timestamp"] == stored


async def test_int_subclasses_and_mappings_are_normalised(adapter: RedisAdapter, fake: Any) -> None:
    class Turn(enum.IntEnum):
        FIRST = 1

    metadata = MappingProxyType({"k": "v"})
    rid = await adapter.store(
        {"session_id": "s-1", "turn_id": Turn.FIRST, "content": "x", "metadata": metadata}
    )
    assert rid == "session:s-1:turns:1"
    payload = sent_payload(fake)
    assert payload["turn_id"] == 1
    assert payload["metadata"] == {"k": "v"}


def _circular() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"session_id": ""}, "session_id"),
        ({"session_id": 12}, "session_id"),
        ({"turn_id": "1"}, "turn_id must be an int"),
        ({"turn_id": True}, "turn_id must be an int"),
        ({"turn_id": 1.0}, "turn_id must be an int"),
        ({"content": None}, "content must be a str"),
        ({"content": b"bytes"}, "content must be a str"),
        ({"metadata": ["a"]}, "metadata must be a mapping"),
        ({"metadata": {"s": {1, 2}}}, "not JSON-serialisable"),
        ({"metadata": {"x": float("nan")}}, "not JSON-serialisable"),
        ({"metadata": _circular()}, "not JSON-serialisable"),
        ({"timestamp": "yesterday"}, "not an ISO 8601"),
        ({"timestamp": "2025-10-20T10:03:00"}, "timezone-aware"),
        ({"timestamp": datetime(2025, 10, 20, 10, 3)}, "timezone-aware"),
        ({"timestamp": 1700000000}, "datetime or an ISO 8601 str"),
    ],
)
async def test_store_refuses_bad_fields(
    adapter: RedisAdapter, fake: Any, change: dict[str, Any], message: str
) -> None:
    data = {"session_id": "s-1", "turn_id": 1, "content": "x", **change}
    with pytest.raises(StorageDataError, match=message):
        await adapter.store(data)
    assert fake.executed == []


async def test_store_names_every_missing_field(adapter: RedisAdapter, fake: Any) -> None:
    with pytest.raises(StorageDataError, match="turn_id, content"):
        await adapter.store({"session_id": "s-1"})
    with pytest.raises(StorageDataError, match="mapping"):
        await adapter.store(["not", "a", "dict"])  # type: ignore[arg-type]
    assert fake.executed == []


async def test_window_zero_stores_nothing(make_adapter: Any, fake: Any) -> None:
    adapter = await make_adapter(window_size=0)
    assert await adapter.store({"session_id": "s-1", "turn_id": 1, "content": "x"}) == (
        "session:s-1:turns:1"
    )
    ids = await adapter.store_many([{"session_id": "s-1", "turn_id": 2, "content": "y"}])
    assert ids == ["session:s-1:turns:2"]
    await adapter.cache_turn("s-1", 3, "z")
    assert fake.executed == []
    with pytest.raises(StorageDataError):  # still validated
        await adapter.store({"session_id": "s-1", "turn_id": "x", "content": "x"})
    # The default search limit is the window: nothing is asked for either.
    assert await adapter.search({"session_id": "s-1"}) == []
    fake.lrange.assert_not_awaited()


# -- retrieve ------------------------------------------------------------------------------------


async def test_retrieve_finds_the_newest_entry_of_a_turn(
    adapter: RedisAdapter, fake: Any, entry: Any
) -> None:
    fake.lrange.return_value = [entry(3), entry(2, content="new"), entry(2, content="old")]
    turn = await adapter.retrieve("session:s-1:turns:2")
    assert turn is not None
    assert turn["content"] == "new"
    fake.lrange.assert_awaited_once_with(KEY, 0, -1)
    fake.expire.assert_not_awaited()
    assert fake.executed == []


async def test_retrieve_missing_turn_is_none(adapter: RedisAdapter, fake: Any, entry: Any) -> None:
    fake.lrange.return_value = [entry(3)]
    assert await adapter.retrieve("session:s-1:turns:50") is None
    fake.lrange.return_value = []
    assert await adapter.retrieve("session:s-1:turns:1") is None


async def test_retrieve_with_a_colon_session(adapter: RedisAdapter, fake: Any, entry: Any) -> None:
    fake.lrange.return_value = [entry(3, session_id="a:turns:1")]
    turn = await adapter.retrieve("session:a:turns:1:turns:3")
    assert turn is not None
    assert turn["session_id"] == "a:turns:1"
    fake.lrange.assert_awaited_once_with("session:a:turns:1:turns", 0, -1)


@pytest.mark.parametrize("bad", ["invalid:id:format", "session:s-1:turns", "", 5])
async def test_retrieve_refuses_non_turn_ids(adapter: RedisAdapter, fake: Any, bad: Any) -> None:
    with pytest.raises(StorageDataError):
        await adapter.retrieve(bad)
    fake.lrange.assert_not_awaited()


@pytest.mark.parametrize(
    "corrupt", [b"{not json", b"\xff\xfe", b"[1, 2]", b"42", b'"text"', b"null"]
)
async def test_corrupt_entries_raise_data_errors(
    adapter: RedisAdapter, fake: Any, entry: Any, corrupt: bytes
) -> None:
    fake.lrange.return_value = [corrupt, entry(1)]
    with pytest.raises(StorageDataError, match="Corrupt entry in Redis list 'session:s-1:turns'"):
        await adapter.retrieve("session:s-1:turns:1")
    with pytest.raises(StorageDataError, match="Corrupt entry"):
        await adapter.search({"session_id": "s-1"})
    with pytest.raises(StorageDataError, match="Corrupt entry"):
        await adapter.delete("session:s-1:turns:1")


# -- search --------------------------------------------------------------------------------------


async def test_search_returns_decoded_turns(adapter: RedisAdapter, fake: Any, entry: Any) -> None:
    fake.lrange.return_value = [entry(2), entry(1)]
    turns = await adapter.search({"session_id": "s-1"})
    assert [t["turn_id"] for t in turns] == [2, 1]
    fake.lrange.assert_awaited_once_with(KEY, 0, 4)  # default limit: the window


@pytest.mark.parametrize(
    ("limit", "offset", "bounds"),
    [
        (2, 0, (0, 1)),
        (2, 2, (2, 3)),
        (10, 3, (3, 12)),
        (1, -1, (-1, -1)),
        (5, -1, (-1, -1)),  # never wraps round to the head
        (5, -2, (-2, -1)),
        (3, -3, (-3, -1)),
    ],
)
async def test_search_ranges(
    adapter: RedisAdapter, fake: Any, limit: int, offset: int, bounds: tuple[int, int]
) -> None:
    await adapter.search({"session_id": "s-1", "limit": limit, "offset": offset})
    fake.lrange.assert_awaited_once_with(KEY, *bounds)


async def test_negative_offset_is_a_python_slice(
    adapter: RedisAdapter, fake: Any, entry: Any
) -> None:
    # turns[-4:][:2]: Redis returns the last four (or all, when fewer), the adapter keeps two.
    fake.lrange.return_value = [entry(3), entry(2), entry(1), entry(0)]
    turns = await adapter.search({"session_id": "s-1", "limit": 2, "offset": -4})
    assert [t["turn_id"] for t in turns] == [3, 2]
    fake.lrange.assert_awaited_once_with(KEY, -4, -1)
    fake.lrange.return_value = [entry(1), entry(0)]  # a list shorter than -offset
    turns = await adapter.search({"session_id": "s-1", "limit": 5, "offset": -10})
    assert [t["turn_id"] for t in turns] == [1, 0]


async def test_search_limit_zero_sends_nothing(adapter: RedisAdapter, fake: Any) -> None:
    assert await adapter.search({"session_id": "s-1", "limit": 0}) == []
    fake.lrange.assert_not_awaited()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "needs 'session_id'"),
        ({"limit": 3}, "needs 'session_id'"),
        ({"session_id": ""}, "session_id"),
        ({"session_id": "s", "limit": -1}, "limit must be an int >= 0"),
        ({"session_id": "s", "limit": "3"}, "limit must be an int"),
        ({"session_id": "s", "limit": True}, "limit must be an int"),
        ({"session_id": "s", "offset": 1.5}, "offset must be an int"),
        ({"session_id": "s", "offset": None}, "offset must be an int"),
        ({"session_id": "s", "limt": 3}, r"Unknown search keys \['limt'\]"),
    ],
)
async def test_search_refuses_bad_queries(
    adapter: RedisAdapter, fake: Any, query: dict[str, Any], message: str
) -> None:
    with pytest.raises(StorageDataError, match=message):
        await adapter.search(query)
    fake.lrange.assert_not_awaited()


async def test_search_refuses_a_non_mapping(adapter: RedisAdapter) -> None:
    with pytest.raises(StorageDataError, match="takes a mapping"):
        await adapter.search("s-1")  # type: ignore[arg-type]


async def test_get_cached_turns_is_search(adapter: RedisAdapter, fake: Any, entry: Any) -> None:
    fake.lrange.return_value = [entry(1)]
    assert [t["turn_id"] for t in await adapter.get_cached_turns("s-1")] == [1]
    fake.lrange.assert_awaited_with(KEY, 0, 4)
    await adapter.get_cached_turns("s-1", limit=1, offset=-2)
    fake.lrange.assert_awaited_with(KEY, -2, -1)


# -- TTL on read ---------------------------------------------------------------------------------


async def test_reads_do_not_touch_the_ttl_by_default(
    adapter: RedisAdapter, fake: Any, entry: Any
) -> None:
    fake.lrange.return_value = [entry(1)]
    await adapter.search({"session_id": "s-1"})
    await adapter.retrieve("session:s-1:turns:1")
    await adapter.get_cached_turns("s-1")
    fake.expire.assert_not_awaited()
    assert fake.executed == []


async def test_reads_refresh_the_ttl_in_the_same_round_trip(
    make_adapter: Any, fake: Any, entry: Any
) -> None:
    adapter = await make_adapter(refresh_ttl_on_read=True, ttl_seconds=120)
    fake.pipeline_results = [[[entry(2), entry(1)], True], [[entry(1)], True], [[], False]]
    turns = await adapter.search({"session_id": "s-1", "limit": 2, "offset": 1})
    assert [t["turn_id"] for t in turns] == [2, 1]
    turn = await adapter.retrieve("session:s-1:turns:1")
    assert turn is not None
    assert await adapter.get_cached_turns("s-2") == []
    assert fake.executed == [
        (False, [("lrange", KEY, 1, 2), ("expire", KEY, 120)]),
        (False, [("lrange", KEY, 0, -1), ("expire", KEY, 120)]),
        (False, [("lrange", "session:s-2:turns", 0, 4), ("expire", "session:s-2:turns", 120)]),
    ]
    fake.lrange.assert_not_awaited()


# -- delete --------------------------------------------------------------------------------------


async def test_delete_a_whole_session(adapter: RedisAdapter, fake: Any) -> None:
    fake.delete.return_value = 1
    assert await adapter.delete("session:a:turns:3:turns") is True
    fake.delete.assert_awaited_once_with("session:a:turns:3:turns")
    fake.delete.return_value = 0
    assert await adapter.delete(KEY) is False


async def test_delete_one_turn_removes_every_copy_by_value(
    adapter: RedisAdapter, fake: Any, entry: Any
) -> None:
    copy_a, copy_b = entry(2, content="a"), entry(2, content="b")
    fake.lrange.return_value = [entry(3), copy_a, copy_b, copy_a]
    fake.pipeline_results = [[2, 1]]
    assert await adapter.delete("session:s-1:turns:2") is True
    fake.lrange.assert_awaited_once_with(KEY, 0, -1)
    assert fake.executed == [(True, [("lrem", KEY, 0, copy_a), ("lrem", KEY, 0, copy_b)])]
    fake.delete.assert_not_awaited()


async def test_delete_missing_turn_is_false(adapter: RedisAdapter, fake: Any, entry: Any) -> None:
    fake.lrange.return_value = [entry(3)]
    assert await adapter.delete("session:s-1:turns:2") is False
    assert fake.executed == []
    # Found, but gone by the time LREM ran (trimmed by a concurrent write).
    fake.lrange.return_value = [entry(2)]
    fake.pipeline_results = [[0]]
    assert await adapter.delete("session:s-1:turns:2") is False


@pytest.mark.parametrize("bad", ["s-1", "session:s-1", "session:s-1:turns:x", None])
async def test_delete_refuses_malformed_ids(adapter: RedisAdapter, fake: Any, bad: Any) -> None:
    with pytest.raises(StorageDataError, match="Malformed"):
        await adapter.delete(bad)
    fake.delete.assert_not_awaited()


# -- store_many ----------------------------------------------------------------------------------


async def test_store_many_groups_by_session_in_one_transaction(
    make_adapter: Any, fake: Any
) -> None:
    adapter = await make_adapter(window_size=3)
    turns = [{"session_id": f"s{i % 2}", "turn_id": i, "content": f"m{i}"} for i in range(6)]
    ids = await adapter.store_many(turns)
    assert ids == [f"session:s{i % 2}:turns:{i}" for i in range(6)]
    assert len(fake.executed) == 1
    transaction, commands = fake.executed[0]
    commands = without_dedup(commands)
    assert transaction is True
    assert [c[0] for c in commands] == ["lpush", "ltrim", "expire"] * 2
    s0_push = commands[0]
    assert s0_push[1] == "session:s0:turns"
    assert [json.loads(v)["turn_id"] for v in s0_push[2:]] == [0, 2, 4]  # oldest first
    assert commands[1:3] == [
        ("ltrim", "session:s0:turns", 0, 2),
        ("expire", "session:s0:turns", 3600),
    ]
    assert [json.loads(v)["turn_id"] for v in commands[3][2:]] == [1, 3, 5]
    # One EVAL of the write script: keys, window, ttl, per-key counts, then the payloads.
    [(_, numkeys, *args)] = fake.evals
    assert numkeys == 2
    assert args[:6] == ["session:s0:turns", "session:s1:turns", 3, 3600, 3, 3]
    assert len(args) == 6 + 6


async def test_store_many_sends_no_more_than_the_window(make_adapter: Any, fake: Any) -> None:
    adapter = await make_adapter(window_size=2)
    await adapter.store_many([{"session_id": "s", "turn_id": i, "content": "x"} for i in range(5)])
    push = without_dedup(fake.executed[0][1])[0]
    assert [json.loads(v)["turn_id"] for v in push[2:]] == [3, 4]


async def test_store_many_validates_everything_first(adapter: RedisAdapter, fake: Any) -> None:
    turns: list[Any] = [{"session_id": "s", "turn_id": 1, "content": "x"}] * 3
    turns.append({"session_id": "s", "turn_id": "bad", "content": "x"})
    with pytest.raises(StorageDataError, match=r"turns\[3\]: turn_id must be an int"):
        await adapter.store_many(turns)
    assert fake.executed == []


@pytest.mark.parametrize("bad", [{"session_id": "s"}, "text", b"bytes"])
async def test_store_many_needs_an_iterable_of_turns(
    adapter: RedisAdapter, fake: Any, bad: Any
) -> None:
    with pytest.raises(StorageDataError, match="iterable of turn mappings"):
        await adapter.store_many(bad)
    assert fake.executed == []


async def test_store_many_accepts_generators_and_empty(adapter: RedisAdapter, fake: Any) -> None:
    assert await adapter.store_many([]) == []
    assert fake.executed == []
    gen = ({"session_id": "g", "turn_id": i, "content": "x"} for i in range(2))
    assert await adapter.store_many(gen) == ["session:g:turns:0", "session:g:turns:1"]
    assert len(fake.executed) == 1


# -- domain API and utilities --------------------------------------------------------------------


async def test_cache_turn_with_a_ttl_override(adapter: RedisAdapter, fake: Any) -> None:
    rid = await adapter.cache_turn("s-1", 4, "Hi!", {"role": "assistant"}, ttl=2)
    assert rid == "session:s-1:turns:4"
    commands = without_dedup(fake.executed[0][1])
    assert commands[2] == ("expire", KEY, 2)
    payload = sent_payload(fake)
    assert (payload["content"], payload["metadata"]) == ("Hi!", {"role": "assistant"})
    await adapter.cache_turn("s-1", 5, "default ttl", timestamp="2025-01-01T00:00:00+00:00")
    assert without_dedup(fake.executed[1][1])[2] == ("expire", KEY, 3600)
    assert sent_payload(fake, 1)["timestamp"] == "2025-01-01T00:00:00+00:00"


@pytest.mark.parametrize("ttl", [0, -5, 1.5, True, "60", 2**31])
async def test_bad_ttl_overrides_are_refused(adapter: RedisAdapter, fake: Any, ttl: Any) -> None:
    with pytest.raises(StorageDataError, match="ttl must be a positive int"):
        await adapter.cache_turn("s-1", 1, "x", ttl=ttl)
    with pytest.raises(StorageDataError, match="ttl must be a positive int"):
        await adapter.refresh_ttl("s-1", ttl=ttl)
    assert fake.executed == []
    fake.expire.assert_not_awaited()


async def test_session_utilities(adapter: RedisAdapter, fake: Any) -> None:
    fake.delete.return_value = 1
    assert await adapter.clear_session("a:b") is True
    fake.delete.assert_awaited_once_with("session:a:b:turns")
    fake.llen.return_value = 3
    assert await adapter.get_session_size("s-1") == 3
    fake.llen.assert_awaited_once_with(KEY)
    fake.exists.return_value = 1
    assert await adapter.session_exists("s-1") is True
    fake.exists.return_value = 0
    assert await adapter.session_exists("s-1") is False
    fake.expire.return_value = True
    assert await adapter.refresh_ttl("s-1") is True
    fake.expire.assert_awaited_with(KEY, 3600)
    fake.expire.return_value = False
    assert await adapter.refresh_ttl("s-1", ttl=60) is False
    fake.expire.assert_awaited_with(KEY, 60)


@pytest.mark.parametrize(
    "call",
    ["clear_session", "get_session_size", "session_exists", "refresh_ttl", "get_cached_turns"],
)
async def test_utilities_refuse_bad_session_ids(adapter: RedisAdapter, call: str) -> None:
    with pytest.raises(StorageDataError, match="session_id"):
        await getattr(adapter, call)("")
