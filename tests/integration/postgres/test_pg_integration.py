"""PostgresAdapter against the real PostgreSQL of the stack outputs.

Every test uses its own ``test-pg-…`` session ids (deleted afterwards) and checks what the
server holds through a separate raw connection, not only what the adapter returned.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageTimeoutError,
    create_adapter,
)
from mas_storage_postgres import PostgresAdapter

Raw = psycopg.AsyncConnection[Any]


async def rows(raw: Raw, query: str, *params: Any) -> list[tuple[Any, ...]]:
    cur = await raw.execute(query, params)
    return await cur.fetchall()


async def turn_count(raw: Raw, session_id: str) -> int:
    ((n,),) = await rows(
        raw, "SELECT count(*) FROM active_context WHERE session_id = %s", session_id
    )
    return int(n)


# -- the generic contract: connect, store, retrieve, search, delete, TTL ----------------


async def test_connect_disconnect(l1: PostgresAdapter) -> None:
    assert l1.is_connected
    await l1.connect()  # harmless
    assert l1.is_connected
    await l1.disconnect()
    assert not l1.is_connected
    await l1.disconnect()  # idempotent


async def test_store_and_retrieve(l1: PostgresAdapter, raw: Raw, session_id: str) -> None:
    data = {
        "session_id": session_id,
        "turn_id": 1,
        "content": "Test message",
        "metadata": {"test": True, "nested": {"n": [1, 2]}},
    }
    record_id = await l1.store(data)
    assert "ttl_expires_at" not in data
    retrieved = await l1.retrieve(record_id)
    assert retrieved is not None
    assert retrieved["id"] == record_id
    assert retrieved["session_id"] == session_id
    assert retrieved["content"] == "Test message"
    assert retrieved["metadata"] == {"test": True, "nested": {"n": [1, 2]}}
    created = datetime.fromisoformat(retrieved["created_at"])
    expires = datetime.fromisoformat(retrieved["ttl_expires_at"])
    assert expires - created == timedelta(hours=24)
    # What the server holds: a JSON object (not a JSON string) and a 24 h TTL.
    ((kind, lifetime),) = await rows(
        raw,
        "SELECT jsonb_typeof(metadata), ttl_expires_at - created_at FROM active_context "
        "WHERE id = %s",
        int(record_id),
    )
    assert (kind, lifetime) == ("object", timedelta(hours=24))


async def test_store_and_retrieve_a_fact(l2: PostgresAdapter, raw: Raw, session_id: str) -> None:
    record_id = await l2.store(
        {
            "session_id": session_id,
            "fact_type": "preference",
            "content": "User prefers dark mode",
            "confidence": 0.95,
            "source_turn_ids": [1, 3],
        }
    )
    fact = await l2.retrieve(record_id)
    assert fact is not None
    assert (fact["confidence"], fact["source_turn_ids"]) == (0.95, [1, 3])
    ((lifetime, updated_is_created),) = await rows(
        raw,
        "SELECT ttl_expires_at - created_at, updated_at = created_at FROM working_memory "
        "WHERE id = %s",
        int(record_id),
    )
    assert lifetime == timedelta(days=7)
    assert updated_is_created


async def test_search_with_filters(l1: PostgresAdapter, session_id: str) -> None:
    for i in range(5):
        await l1.store({"session_id": session_id, "turn_id": i, "content": f"Message {i}"})
    assert len(await l1.search({"session_id": session_id, "limit": 10})) == 5
    two = await l1.search({"session_id": session_id, "limit": 2})
    assert [r["turn_id"] for r in two] == [4, 3]
    (one,) = await l1.search({"session_id": session_id, "turn_id": 2})
    assert one["content"] == "Message 2"


async def test_delete(l1: PostgresAdapter, raw: Raw, session_id: str) -> None:
    record_id = await l1.store({"session_id": session_id, "turn_id": 1, "content": "To go"})
    assert await l1.delete(record_id) is True
    assert await l1.retrieve(record_id) is None
    assert await turn_count(raw, session_id) == 0
    assert await l1.delete(record_id) is False


async def test_ttl_expiration(migrated_url: str, session_id: str) -> None:
    """The spec's TTL test, with a backdated created_at (the schema refuses born-expired rows).

    In its own database, so that ``delete_expired`` counts only this test's rows.
    """
    created = datetime.now(UTC) - timedelta(hours=3)
    async with PostgresAdapter(migrated_url) as l1:
        expired_id = await l1.store(
            {
                "session_id": session_id,
                "turn_id": 1,
                "content": "Expired message",
                "created_at": created,
                "ttl_expires_at": created + timedelta(hours=1),
            }
        )
        live_id = await l1.store({"session_id": session_id, "turn_id": 2, "content": "Live"})
        live = await l1.search({"session_id": session_id, "include_expired": False})
        assert [r["id"] for r in live] == [live_id]
        both = await l1.search({"session_id": session_id, "include_expired": True})
        assert {r["id"] for r in both} == {expired_id, live_id}
        assert await l1.retrieve(expired_id) is None
        again = await l1.retrieve(expired_id, include_expired=True)
        assert again is not None
        assert again["content"] == "Expired message"
        assert await l1.count(session_id) == 1
        assert await l1.count(session_id, include_expired=True) == 2
        assert await l1.delete_expired() == 1
        assert await l1.delete_expired() == 0
        assert [r["id"] for r in await l1.search({"include_expired": True})] == [live_id]


async def test_a_new_row_born_expired_is_refused(
    l1: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    with pytest.raises(StorageDataError, match="cannot be born expired"):
        await l1.store(
            {
                "session_id": session_id,
                "turn_id": 1,
                "content": "x",
                "ttl_expires_at": datetime.now(UTC) - timedelta(hours=1),
            }
        )
    assert await turn_count(raw, session_id) == 0


async def test_context_manager(pg_url: str) -> None:
    async with PostgresAdapter({"url": pg_url, "table": "active_context"}) as adapter:
        assert adapter.is_connected
        assert await adapter.count() >= 0
    assert not adapter.is_connected


async def test_create_adapter_and_plain_url(pg_url: str, session_id: str) -> None:
    async with create_adapter("postgres", pg_url) as adapter:
        assert isinstance(adapter, PostgresAdapter)
        await adapter.store({"session_id": session_id, "turn_id": 1, "content": "x"})
        assert await adapter.count(session_id) == 1


# -- constraints and bad input -------------------------------------------------------------


async def test_duplicate_turn_is_a_data_error_and_keeps_one_row(
    l1: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    await l1.store({"session_id": session_id, "turn_id": 1, "content": "first"})
    with pytest.raises(StorageDataError, match="unique_session_turn") as info:
        await l1.store({"session_id": session_id, "turn_id": 1, "content": "second"})
    assert isinstance(info.value.orig, psycopg.errors.UniqueViolation)
    assert await rows(
        raw, "SELECT content FROM active_context WHERE session_id = %s", session_id
    ) == [("first",)]


async def test_bad_ids_are_data_errors(l1: PostgresAdapter) -> None:
    for bad in ("abc", "1 OR 1=1", "-5"):
        with pytest.raises(StorageDataError):
            await l1.retrieve(bad)


async def test_sort_injection_is_refused_and_the_table_is_intact(
    l1: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    await l1.store({"session_id": session_id, "turn_id": 1, "content": "keep me"})
    ((before,),) = await rows(raw, "SELECT count(*) FROM active_context")
    for attack in (
        "turn_id; DROP TABLE active_context; --",
        "(SELECT pg_sleep(5))",
        'turn_id" DESC; DELETE FROM active_context; --',
    ):
        with pytest.raises(StorageDataError, match="allowed: id, session_id, turn_id"):
            await l1.search({"session_id": session_id, "sort": attack})
    with pytest.raises(StorageDataError, match="'order' must be"):
        await l1.search({"session_id": session_id, "order": "DESC; DROP TABLE active_context"})
    ((after,),) = await rows(raw, "SELECT count(*) FROM active_context")
    assert (await rows(raw, "SELECT to_regclass('active_context') IS NOT NULL")) == [(True,)]
    assert after >= before  # other tests may add rows concurrently; nothing was removed
    assert await turn_count(raw, session_id) == 1


async def test_session_id_with_sql_is_just_data(
    l1: PostgresAdapter, session_ids: Callable[[], str]
) -> None:
    sneaky = session_ids() + "'; DROP TABLE active_context; --"
    await l1.store({"session_id": sneaky, "turn_id": 1, "content": "x"})
    (row,) = await l1.search({"session_id": sneaky})
    assert row["session_id"] == sneaky
    await l1.clear_session(sneaky)


# -- pagination and sort order -------------------------------------------------------------


async def test_pagination_and_sort_order(l1: PostgresAdapter, session_id: str) -> None:
    base = datetime.now(UTC) - timedelta(hours=1)
    await l1.store_many(
        [
            {
                "session_id": session_id,
                "turn_id": i,
                "content": f"m{i}",
                # created_at runs backwards, so sorting by it differs from sorting by turn_id
                "created_at": base - timedelta(seconds=i),
            }
            for i in range(25)
        ]
    )
    pages = []
    for offset in range(0, 30, 10):
        page = await l1.search({"session_id": session_id, "limit": 10, "offset": offset})
        pages.append([r["turn_id"] for r in page])
    assert pages == [list(range(24, 14, -1)), list(range(14, 4, -1)), [4, 3, 2, 1, 0]]
    ascending = await l1.search({"session_id": session_id, "limit": 25, "order": "asc"})
    assert [r["turn_id"] for r in ascending] == list(range(25))
    by_time = await l1.search(
        {"session_id": session_id, "limit": 3, "sort": "created_at", "order": "asc"}
    )
    assert [r["turn_id"] for r in by_time] == [24, 23, 22]


# -- store_many ----------------------------------------------------------------------------


async def test_store_many_writes_1000_rows(l1: PostgresAdapter, raw: Raw, session_id: str) -> None:
    records = [
        {"session_id": session_id, "turn_id": i, "content": f"bulk {i}", "metadata": {"i": i}}
        for i in range(1000)
    ]
    ids = await l1.store_many(records)
    assert len(ids) == len(set(ids)) == 1000
    stored = await rows(
        raw,
        "SELECT id::text, turn_id, metadata->>'i', jsonb_typeof(metadata) FROM active_context "
        "WHERE session_id = %s ORDER BY turn_id",
        session_id,
    )
    assert [r[0] for r in stored] == ids
    assert [r[1] for r in stored] == list(range(1000))
    assert all(r[2] == str(r[1]) and r[3] == "object" for r in stored)


async def test_store_many_of_facts(l2: PostgresAdapter, raw: Raw, session_id: str) -> None:
    ids = await l2.store_many(
        [
            {"session_id": session_id, "fact_type": "entity", "content": f"e{i}", "confidence": 0.5}
            for i in range(10)
        ]
    )
    stored = await rows(
        raw,
        "SELECT id::text, confidence, source_turn_ids FROM working_memory WHERE session_id = %s",
        session_id,
    )
    assert sorted(r[0] for r in stored) == sorted(ids)
    assert {(r[1], tuple(r[2])) for r in stored} == {(0.5, ())}


async def test_store_many_with_one_bad_row_leaves_the_table_unchanged(
    l1: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    await l1.store({"session_id": session_id, "turn_id": 500, "content": "already here"})
    # A row the server refuses: turn 500 exists already (unique_session_turn).
    batch = [{"session_id": session_id, "turn_id": i, "content": "x"} for i in range(999)]
    batch.append({"session_id": session_id, "turn_id": 500, "content": "clash"})
    with pytest.raises(StorageDataError, match="unique_session_turn"):
        await l1.store_many(batch)
    assert await rows(
        raw, "SELECT turn_id, content FROM active_context WHERE session_id = %s", session_id
    ) == [(500, "already here")]
    # A row the adapter refuses before sending anything.
    batch[-1] = {"session_id": session_id, "turn_id": -1, "content": "bad"}
    with pytest.raises(StorageDataError, match="Record 999"):
        await l1.store_many(batch)
    assert await turn_count(raw, session_id) == 1


# -- concurrency ---------------------------------------------------------------------------


async def test_200_concurrent_add_turn_calls_leave_200_rows(
    l1: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    results = await asyncio.gather(
        *(l1.add_turn(session_id, f"message {i}", {"i": i}) for i in range(200))
    )
    assert sorted(results) == list(range(1, 201))
    stored = await rows(
        raw,
        "SELECT turn_id, metadata->>'i' FROM active_context WHERE session_id = %s",
        session_id,
    )
    assert len(stored) == 200
    assert sorted(r[0] for r in stored) == list(range(1, 201))
    assert sorted(int(r[1]) for r in stored) == list(range(200))


async def test_concurrent_sessions_number_independently(
    l1: PostgresAdapter, session_ids: Callable[[], str]
) -> None:
    a, b = session_ids(), session_ids()
    await asyncio.gather(*(l1.add_turn(s, "x") for s in (a, b) for _ in range(20)))
    assert [t["turn_id"] for t in await l1.get_recent_turns(a, 50)] == list(range(1, 21))
    assert [t["turn_id"] for t in await l1.get_recent_turns(b, 50)] == list(range(1, 21))


# -- the domain workflow: turns, facts, updates, cleanup ------------------------------------


async def test_full_workflow(pg_url: str, raw: Raw, session_id: str) -> None:
    adapter = PostgresAdapter(pg_url)
    await adapter.connect()
    try:
        turn1 = await adapter.add_turn(session_id, "Hello", {"role": "user"})
        turn2 = await adapter.add_turn(session_id, "Hi!", {"role": "assistant"})
        assert turn1 > 0
        assert turn2 > turn1
        turns = await adapter.get_recent_turns(session_id, limit=10)
        assert len(turns) == 2
        assert turns[0]["content"] == "Hello"
        assert turns[0]["metadata"] == {"role": "user"}

        fact_id = await adapter.add_fact(session_id, "preference", "User likes Python", 0.9)
        assert fact_id > 0
        facts = await adapter.get_facts(session_id)
        assert len(facts) == 1
        assert facts[0]["fact_type"] == "preference"

        assert await adapter.update_fact(fact_id, content="User loves Python", confidence=0.95)
        updated = await adapter.get_facts(session_id)
        assert updated[0]["content"] == "User loves Python"
        assert updated[0]["confidence"] == 0.95
        assert updated[0]["updated_at"] > updated[0]["created_at"]

        assert await adapter.delete_turn(session_id, turn1)
        remaining = await adapter.get_recent_turns(session_id)
        assert [t["turn_id"] for t in remaining] == [turn2]

        assert await adapter.clear_session(session_id) == {
            "active_context": 1,
            "working_memory": 1,
        }
        assert await adapter.get_recent_turns(session_id) == []
        assert await adapter.get_facts(session_id) == []
        assert await turn_count(raw, session_id) == 0
    finally:
        await adapter.disconnect()


async def test_add_turn_retry_with_explicit_number_is_idempotent(
    l1: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    assert await l1.add_turn(session_id, "hello", {"r": 1}, turn_id=5) == 5
    assert await l1.add_turn(session_id, "hello", {"r": 1}, turn_id=5) == 5  # a retry
    assert await turn_count(raw, session_id) == 1
    with pytest.raises(StorageDataError, match="already exists with other content"):
        await l1.add_turn(session_id, "something else", turn_id=5)
    assert await rows(
        raw, "SELECT content FROM active_context WHERE session_id = %s", session_id
    ) == [("hello",)]
    assert await l1.add_turn(session_id, "next") == 6


async def test_facts_filtered_by_type_and_confidence(l2: PostgresAdapter, session_id: str) -> None:
    await l2.add_fact(session_id, "preference", "dark mode", 0.95, source_turn_ids=[1])
    await l2.add_fact(session_id, "preference", "tabs", 0.4)
    await l2.add_fact(session_id, "goal", "ship it", 0.8)
    assert [f["content"] for f in await l2.get_facts(session_id)] == [
        "dark mode",
        "ship it",
        "tabs",
    ]
    prefs = await l2.get_facts(session_id, fact_type="preference", min_confidence=0.5)
    assert [(f["content"], f["source_turn_ids"]) for f in prefs] == [("dark mode", [1])]
    assert await l2.update_fact(999_999_999, content="nobody") is False


async def test_update_fact_ttl_and_expiry(l2: PostgresAdapter, raw: Raw, session_id: str) -> None:
    fact_id = await l2.add_fact(session_id, "goal", "x", ttl=timedelta(minutes=5))
    assert await l2.update_fact(fact_id, ttl_expires_at=None)
    assert await rows(raw, "SELECT ttl_expires_at FROM working_memory WHERE id = %s", fact_id) == [
        (None,)
    ]
    with pytest.raises(StorageDataError, match="valid_ttl_wm"):
        await l2.update_fact(fact_id, ttl_expires_at=datetime.now(UTC) - timedelta(days=30))


async def test_cleanup_expired_uses_the_migration_functions(
    migrated_url: str, session_id: str
) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    async with PostgresAdapter(migrated_url) as memory:
        await memory.add_turn(session_id, "old", created_at=past, ttl=timedelta(hours=1))
        await memory.add_turn(session_id, "old too", created_at=past, ttl=timedelta(hours=2))
        await memory.add_turn(session_id, "live")
        await memory.add_fact(session_id, "goal", "stale", created_at=past, ttl=timedelta(hours=1))
        await memory.add_fact(session_id, "goal", "fresh")
        assert await memory.cleanup_expired() == {
            "active_context": 2,
            "working_memory": 1,
            "total": 3,
        }
        turns = await memory.get_recent_turns(session_id, 10, include_expired=True)
        assert [t["content"] for t in turns] == ["live"]
        facts = await memory.get_facts(session_id, include_expired=True)
        assert [f["content"] for f in facts] == ["fresh"]
        await memory.add_turn(session_id, "old again", created_at=past, ttl=timedelta(hours=1))
        assert await memory.cleanup_expired_turns() == 1
        assert await memory.cleanup_expired() == {
            "active_context": 0,
            "working_memory": 0,
            "total": 0,
        }


# -- failures ------------------------------------------------------------------------------


async def test_stopped_server_is_a_connection_error_within_the_timeout() -> None:
    adapter = PostgresAdapter(
        {"url": "postgresql://mas:pw-not-shown@127.0.0.1:61599/mas_memory", "timeout": 2}
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(StorageConnectionError) as info:
        # A guard, not a speed assertion: the call must give up on its own.
        await asyncio.wait_for(adapter.connect(), timeout=30)
    assert "pw-not-shown" not in str(info.value)
    assert "61599" in str(info.value)
    assert not adapter.is_connected
    assert adapter.pool is None
    print(f"refused after {loop.time() - start:.3f}s")


async def test_wrong_password_is_a_connection_error(pg_url: str) -> None:
    parts = psycopg.conninfo.conninfo_to_dict(pg_url)
    bad = psycopg.conninfo.make_conninfo(pg_url, password="not-the-password-" + uuid.uuid4().hex)
    if not parts.get("password"):
        pytest.skip("the server of these outputs does not use passwords")
    with pytest.raises(StorageConnectionError) as info:
        await PostgresAdapter({"url": bad, "timeout": 3}).connect()
    assert "not-the-password" not in str(info.value)


async def test_row_lock_past_statement_timeout_is_a_timeout(
    pg_url: str, raw: Raw, session_id: str
) -> None:
    async with PostgresAdapter({"url": pg_url, "statement_timeout": 0.2}) as adapter:
        record_id = await adapter.store({"session_id": session_id, "turn_id": 1, "content": "x"})
        async with await psycopg.AsyncConnection.connect(pg_url) as holder:
            await holder.execute(
                "SELECT 1 FROM active_context WHERE id = %s FOR UPDATE", (int(record_id),)
            )
            with pytest.raises(StorageTimeoutError) as info:
                await adapter.delete(record_id)
            assert isinstance(info.value.orig, psycopg.errors.QueryCanceled)
            await holder.rollback()
        assert await adapter.delete(record_id) is True


async def test_exhausted_pool_is_a_timeout(pg_url: str) -> None:
    async with PostgresAdapter({"url": pg_url, "pool_size": 1, "min_size": 1, "timeout": 0.3}) as a:
        assert a.pool is not None
        async with a.pool.connection():
            with pytest.raises(StorageTimeoutError, match="pool_size=1"):
                await a.count()
        assert await a.count() >= 0


async def test_pool_recovers_from_killed_connections_without_reconnecting(
    pg_url: str, raw: Raw, session_id: str
) -> None:
    async with PostgresAdapter({"url": pg_url, "pool_size": 2, "min_size": 2}) as adapter:
        assert adapter.pool is not None
        pids = []
        async with adapter.pool.connection() as c1, adapter.pool.connection() as c2:
            for conn in (c1, c2):
                cur = await conn.execute("SELECT pg_backend_pid()")
                pids.append((await cur.fetchone())[0])
        # With a timeout the call returns once the processes are gone (PostgreSQL 14+): the
        # server has closed both sockets, as after any restart or kill.
        killed = await rows(
            raw, "SELECT pg_terminate_backend(pid, 5000) FROM unnest(%s::int[]) pid", pids
        )
        assert killed == [(True,), (True,)]
        # Both pooled connections are dead; the checkout check replaces them.
        await adapter.store({"session_id": session_id, "turn_id": 1, "content": "after"})
        assert await adapter.count(session_id) == 1
