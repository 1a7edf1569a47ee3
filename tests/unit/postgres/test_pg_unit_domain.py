"""The domain API (turns, facts, sessions, cleanup) on the fake pool."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pg_fakes import FakePool, Result

from mas_storage import StorageDataError
from mas_storage_postgres import PostgresAdapter

Pair = tuple[PostgresAdapter, FakePool]
T0 = datetime(2025, 10, 20, 12, 0, tzinfo=UTC)


# -- turns ---------------------------------------------------------------------------------


async def test_add_turn_numbers_under_a_session_lock_in_one_transaction(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[("lock",)]), Result(rows=[(4,)]))
    assert await adapter.add_turn("s-1", "Hello", {"role": "user"}) == 4
    lock, insert = pool.executed[-2:]
    assert lock == ("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (0x6D6173, "s-1"))
    assert "COALESCE(max(turn_id), 0) + 1" in insert[0]
    assert insert[0].endswith("FROM active_context WHERE session_id = %s RETURNING turn_id")
    session_id, content, metadata, created_at, ttl, where_session = insert[1]
    assert (session_id, content, where_session) == ("s-1", "Hello", "s-1")
    assert json.loads(metadata.obj) == {"role": "user"}
    assert ttl - created_at == timedelta(hours=24)
    assert pool.events == ["pipeline", "begin", "commit"]


async def test_add_turn_with_a_lifetime_or_an_expiry(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(), Result(rows=[(1,)]), Result(), Result(rows=[(2,)]))
    await adapter.add_turn("s", "a", ttl=timedelta(minutes=5), created_at=T0)
    params = pool.executed[-1][1]
    assert (params[3], params[4]) == (T0, T0 + timedelta(minutes=5))
    expiry = datetime.now(UTC) + timedelta(hours=2)
    await adapter.add_turn("s", "b", ttl=expiry)
    assert pool.executed[-1][1][4] == expiry


async def test_add_turn_with_a_lifetime_and_no_created_at_starts_now(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(), Result(rows=[(1,)]))
    await adapter.add_turn("s", "a", ttl=timedelta(minutes=5))
    created, ttl = pool.executed[-1][1][3:5]
    assert ttl - created == timedelta(minutes=5)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"ttl": timedelta(0)}, "must be positive"),
        ({"ttl": 3600}, "'ttl' must be a datetime or a timedelta"),
        ({"ttl": datetime.now(UTC) - timedelta(seconds=1)}, "cannot be born expired"),
        ({"created_at": datetime(2025, 1, 1)}, "naive"),
        ({"turn_id": -1}, "between 0 and"),
    ],
)
async def test_add_turn_refuses_bad_arguments(l1: Pair, kwargs: dict, fragment: str) -> None:
    adapter, pool = l1
    with pytest.raises(StorageDataError, match=fragment):
        await adapter.add_turn("s", "x", **kwargs)
    assert pool.statements() == []


async def test_add_turn_with_an_explicit_number_inserts_once(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[(7,)]))
    assert await adapter.add_turn("s", "x", turn_id=7) == 7
    statement, params = pool.executed[-1]
    assert "ON CONFLICT ON CONSTRAINT unique_session_turn DO NOTHING" in statement
    assert params[:3] == ("s", 7, "x")
    assert pool.events == []  # one statement, no transaction


async def test_add_turn_replayed_with_the_same_content_is_idempotent(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[]), Result(rows=[(True,)]))
    assert await adapter.add_turn("s", "x", {"a": 1}, turn_id=7) == 7
    statement, params = pool.executed[-1]
    assert statement.startswith("SELECT content = %s AND metadata = %s FROM active_context")
    assert params[0] == "x" and params[2:] == ("s", 7)


@pytest.mark.parametrize("existing", [[(False,)], []])
async def test_add_turn_over_another_turn_is_a_clear_conflict(l1: Pair, existing: list) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[]), Result(rows=existing))
    with pytest.raises(StorageDataError, match="Turn 7 of session 's' already exists"):
        await adapter.add_turn("s", "other", turn_id=7)


async def test_get_recent_turns_returns_oldest_first(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[{"id": 3, "turn_id": 3}, {"id": 2, "turn_id": 2}]))
    turns = await adapter.get_recent_turns("s", limit=2)
    assert [t["turn_id"] for t in turns] == [2, 3]
    statement, params = pool.executed[-1]
    assert statement.endswith("ORDER BY turn_id DESC LIMIT %s")
    assert "ttl_expires_at > now()" in statement
    assert params == ("s", 2)
    pool.script(Result())
    await adapter.get_recent_turns("s", include_expired=True)
    assert "ttl_expires_at" not in pool.executed[-1][0].split("WHERE")[1]


async def test_get_recent_turns_refuses_bad_limits(l1: Pair) -> None:
    adapter, _ = l1
    with pytest.raises(StorageDataError, match="'limit'"):
        await adapter.get_recent_turns("s", limit=0)


async def test_delete_turn(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rowcount=1), Result(rowcount=0))
    assert await adapter.delete_turn("s", 2) is True
    assert await adapter.delete_turn("s", 2) is False
    assert pool.executed[-1] == (
        "DELETE FROM active_context WHERE session_id = %s AND turn_id = %s",
        ("s", 2),
    )
    with pytest.raises(StorageDataError):
        await adapter.delete_turn("s", "2")  # type: ignore[arg-type]


async def test_cleanup_expired_turns_uses_the_migration_function(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[(5,)]))
    assert await adapter.cleanup_expired_turns() == 5
    assert pool.executed[-1][0] == 'SELECT "cleanup_expired_active_context"()'


# -- facts ---------------------------------------------------------------------------------


async def test_add_fact_binds_every_column(l1: Pair) -> None:
    adapter, pool = l1  # the domain API works whatever the generic table is
    pool.script(Result(rows=[(12,)]))
    fact_id = await adapter.add_fact(
        "s", "preference", "dark mode", 0.9, source_turn_ids=[1, 3], metadata={"src": "chat"}
    )
    assert fact_id == 12
    statement, params = pool.executed[-1]
    assert statement.startswith('INSERT INTO "working_memory"')
    assert params[:5] == ("s", "preference", "dark mode", 0.9, [1, 3])
    assert json.loads(params[5].obj) == {"src": "chat"}
    assert params[8] - params[6] == timedelta(days=7)


async def test_add_fact_refuses_bad_confidence(l1: Pair) -> None:
    adapter, pool = l1
    with pytest.raises(StorageDataError, match=r"between 0\.0 and 1\.0"):
        await adapter.add_fact("s", "t", "c", confidence=1.01)
    assert pool.statements() == []


async def test_get_facts_filters_and_orders(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[{"id": 1, "confidence": 0.9}]))
    facts = await adapter.get_facts("s", fact_type="preference", min_confidence=0.8, limit=5)
    assert facts == [{"id": "1", "confidence": 0.9}]
    statement, params = pool.executed[-1]
    assert "WHERE session_id = %s AND fact_type = %s AND confidence >= %s AND" in statement
    assert statement.endswith("ORDER BY confidence DESC, updated_at DESC, id LIMIT %s")
    assert params == ["s", "preference", 0.8, 5]
    pool.script(Result())
    await adapter.get_facts("s", include_expired=True)
    assert pool.executed[-1][1] == ["s", 100]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"fact_type": ""}, "'fact_type'"),
        ({"min_confidence": -1}, "'min_confidence'"),
        ({"limit": 0}, "'limit'"),
    ],
)
async def test_get_facts_refuses_bad_filters(l1: Pair, kwargs: dict, fragment: str) -> None:
    adapter, _ = l1
    with pytest.raises(StorageDataError, match=fragment):
        await adapter.get_facts("s", **kwargs)


async def test_update_fact_sets_only_the_given_columns(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rowcount=1))
    assert await adapter.update_fact("12", content="loves Python", confidence=0.95) is True
    assert pool.executed[-1] == (
        'UPDATE working_memory SET "content" = %s, "confidence" = %s WHERE id = %s',
        ["loves Python", 0.95, 12],
    )


async def test_update_fact_every_field(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rowcount=1), Result(rowcount=0))
    expiry = datetime.now(UTC) + timedelta(days=1)
    assert await adapter.update_fact(
        3,
        fact_type="goal",
        source_turn_ids=[4],
        metadata={"k": "v"},
        ttl_expires_at=expiry,
    )
    statement, params = pool.executed[-1]
    assert statement == (
        'UPDATE working_memory SET "fact_type" = %s, "source_turn_ids" = %s, "metadata" = %s, '
        '"ttl_expires_at" = %s WHERE id = %s'
    )
    assert params[0:2] == ["goal", [4]]
    assert json.loads(params[2].obj) == {"k": "v"}
    assert params[3:] == [expiry, 3]
    assert await adapter.update_fact(3, ttl_expires_at=None) is False
    assert pool.executed[-1][1] == [None, 3]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "needs at least one of"),
        ({"confidence": 2.0}, "between 0.0 and 1.0"),
        ({"fact_type": ""}, "must not be empty"),
        ({"content": 5}, "'content' must be a string"),
        ({"source_turn_ids": ["x"]}, "non-turn id"),
        ({"ttl_expires_at": datetime(2030, 1, 1)}, "naive"),
    ],
)
async def test_update_fact_refuses_bad_changes(l1: Pair, kwargs: dict, fragment: str) -> None:
    adapter, pool = l1
    with pytest.raises(StorageDataError, match=fragment):
        await adapter.update_fact(1, **kwargs)
    assert pool.statements() == []


async def test_update_fact_refuses_a_bad_id(l1: Pair) -> None:
    adapter, pool = l1
    with pytest.raises(StorageDataError, match="record id"):
        await adapter.update_fact("x", content="c")
    assert pool.statements() == []


# -- both tables ---------------------------------------------------------------------------


async def test_clear_session_deletes_both_tables_in_one_transaction(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rowcount=2), Result(rowcount=1))
    assert await adapter.clear_session("s") == {"active_context": 2, "working_memory": 1}
    assert pool.executed[-2:] == [
        ("DELETE FROM active_context WHERE session_id = %s", ("s",)),
        ("DELETE FROM working_memory WHERE session_id = %s", ("s",)),
    ]
    assert pool.events == ["pipeline", "begin", "commit"]


async def test_cleanup_expired_returns_the_counts_per_table(l1: Pair) -> None:
    adapter, pool = l1
    row = {"active_context_deleted": 2, "working_memory_deleted": 3, "total_deleted": 5}
    pool.script(Result(rows=[row]), Result(rows=[{k: 0 for k in row}]))
    assert await adapter.cleanup_expired() == {
        "active_context": 2,
        "working_memory": 3,
        "total": 5,
    }
    assert pool.executed[-1][0] == "SELECT * FROM cleanup_expired_records()"
    assert (await adapter.cleanup_expired())["total"] == 0
