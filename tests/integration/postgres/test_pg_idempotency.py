"""Facts with an ``idempotency_key`` (migration 0002) against the real PostgreSQL.

A retry of a write whose reply was lost is the same call again: these tests repeat calls and
then check what the DATABASE holds (one row per session and key, the original row untouched
after a refused replay, nothing of a refused batch), through a separate raw connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from mas_storage import StorageDataError
from mas_storage_postgres import PostgresAdapter

Raw = psycopg.AsyncConnection[Any]
FACT_COLUMNS = (
    "id, fact_type, content, confidence, source_turn_ids, metadata, created_at, updated_at, "
    "ttl_expires_at, idempotency_key"
)


async def facts_of(raw: Raw, session_id: str) -> list[tuple[Any, ...]]:
    """Every fact of a session, expired or not, as the server holds it (ordered by id)."""
    cur = await raw.execute(
        f"SELECT {FACT_COLUMNS} FROM working_memory WHERE session_id = %s ORDER BY id",  # noqa: S608
        (session_id,),
    )
    return await cur.fetchall()


def batch(session_id: str, n: int, *, prefix: str = "k") -> list[dict[str, Any]]:
    return [
        {
            "session_id": session_id,
            "fact_type": "entity",
            "content": f"fact {i}",
            "confidence": 0.5,
            "source_turn_ids": [i],
            "metadata": {"i": i},
            "idempotency_key": f"{prefix}-{i}",
        }
        for i in range(n)
    ]


# -- add_fact / store ----------------------------------------------------------------------


async def test_a_retried_add_fact_with_a_key_leaves_one_row(
    l2: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    args = ("preference", "dark mode", 0.9)
    kwargs: dict[str, Any] = {"source_turn_ids": [1, 2], "metadata": {"a": 1, "b": [1]}}
    first = await l2.add_fact(session_id, *args, **kwargs, idempotency_key="pref-1")
    # The retry computes its own times (another created_at, another expiry): still the same fact.
    again = await l2.add_fact(
        session_id, *args, **kwargs, ttl=timedelta(hours=1), idempotency_key="pref-1"
    )
    # Metadata is compared as jsonb: key order does not matter.
    third = await l2.add_fact(
        session_id,
        *args,
        source_turn_ids=[1, 2],
        metadata={"b": [1], "a": 1},
        idempotency_key="pref-1",
    )
    assert first == again == third
    (row,) = await facts_of(raw, session_id)
    assert row[0] == first
    assert row[1:6] == ("preference", "dark mode", 0.9, [1, 2], {"a": 1, "b": [1]})
    assert row[8] - row[6] == timedelta(days=7)  # the first call's expiry, not the retry's
    assert row[9] == "pref-1"


@pytest.mark.parametrize(
    "change",
    [
        {"fact_type": "goal"},
        {"content": "light mode"},
        {"confidence": 0.8},
        {"source_turn_ids": [1]},
        {"metadata": {"a": 2}},
    ],
)
async def test_same_key_other_fields_raises_and_keeps_the_original(
    l2: PostgresAdapter, raw: Raw, session_id: str, change: dict[str, Any]
) -> None:
    fields: dict[str, Any] = {
        "fact_type": "preference",
        "content": "dark mode",
        "confidence": 0.9,
        "source_turn_ids": [1, 2],
        "metadata": {"a": 1},
    }
    fact_id = await l2.add_fact(session_id, **fields, idempotency_key="k")
    before = await facts_of(raw, session_id)
    with pytest.raises(StorageDataError, match=rf"already exists \(id {fact_id}\) with other"):
        await l2.add_fact(session_id, **{**fields, **change}, idempotency_key="k")
    assert await facts_of(raw, session_id) == before


async def test_two_sessions_may_use_the_same_key(
    l2: PostgresAdapter, raw: Raw, session_ids: Callable[[], str]
) -> None:
    a, b = session_ids(), session_ids()
    id_a = await l2.add_fact(a, "goal", "ship", idempotency_key="shared")
    id_b = await l2.add_fact(b, "goal", "ship", idempotency_key="shared")
    assert id_a != id_b
    assert [r[0] for r in await facts_of(raw, a)] == [id_a]
    assert [r[0] for r in await facts_of(raw, b)] == [id_b]


async def test_facts_without_a_key_are_not_deduplicated(
    l2: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    first = await l2.add_fact(session_id, "goal", "ship")
    second = await l2.add_fact(session_id, "goal", "ship")
    assert first != second
    assert [(r[0], r[9]) for r in await facts_of(raw, session_id)] == [
        (first, None),
        (second, None),
    ]


async def test_store_follows_the_same_rule_and_reads_return_the_key(
    l2: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    record = {
        "session_id": session_id,
        "fact_type": "goal",
        "content": "ship",
        "idempotency_key": "s1",
    }
    record_id = await l2.store(record)
    assert await l2.store(record) == record_id
    with pytest.raises(StorageDataError, match="already exists"):
        await l2.store({**record, "content": "sink"})
    assert len(await facts_of(raw, session_id)) == 1
    stored = await l2.retrieve(record_id)
    assert stored is not None
    assert stored["idempotency_key"] == "s1"
    (found,) = await l2.search({"session_id": session_id})
    assert found["idempotency_key"] == "s1"
    (listed,) = await l2.get_facts(session_id)
    assert listed["idempotency_key"] == "s1"


async def test_concurrent_calls_with_one_key_store_one_fact(
    l2: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    # return_exceptions: every call has ended before the check (and the cleanup) runs.
    ids = await asyncio.gather(
        *(l2.add_fact(session_id, "goal", "ship", idempotency_key="once") for _ in range(20)),
        return_exceptions=True,
    )
    assert len(set(ids)) == 1, ids
    assert [r[0] for r in await facts_of(raw, session_id)] == [ids[0]]


async def test_update_fact_keeps_the_key(l2: PostgresAdapter, raw: Raw, session_id: str) -> None:
    fact_id = await l2.add_fact(session_id, "goal", "ship", 0.5, idempotency_key="g")
    assert await l2.update_fact(fact_id, content="ship it", confidence=0.9, ttl_expires_at=None)
    ((key, content),) = [(r[9], r[2]) for r in await facts_of(raw, session_id)]
    assert (key, content) == ("g", "ship it")
    # A late replay of the original call no longer matches the (changed) stored fact...
    with pytest.raises(StorageDataError, match=rf"already exists \(id {fact_id}\)"):
        await l2.add_fact(session_id, "goal", "ship", 0.5, idempotency_key="g")
    # ...while the fact as it now is counts as the same one.
    assert await l2.add_fact(session_id, "goal", "ship it", 0.9, idempotency_key="g") == fact_id
    assert len(await facts_of(raw, session_id)) == 1


async def test_deleting_a_fact_frees_its_key(
    l2: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    fact_id = await l2.add_fact(session_id, "goal", "ship", idempotency_key="d")
    assert await l2.delete(str(fact_id))
    again = await l2.add_fact(session_id, "goal", "other", idempotency_key="d")
    assert again != fact_id
    assert [(r[0], r[2]) for r in await facts_of(raw, session_id)] == [(again, "other")]


# -- store_many ----------------------------------------------------------------------------


async def test_a_rerun_of_a_keyed_batch_adds_nothing(
    l2: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    records = batch(session_id, 300)
    ids = await l2.store_many(records)
    before = await facts_of(raw, session_id)
    assert [str(r[0]) for r in before] == ids
    assert [(r[2], r[9]) for r in before] == [(f"fact {i}", f"k-{i}") for i in range(300)]
    assert await l2.store_many(records) == ids
    # A longer batch: the first 300 are known, the next 50 are new; ids in the caller's order.
    longer = batch(session_id, 350)[::-1]
    ids_longer = await l2.store_many(longer)
    assert ids_longer[50:] == ids[::-1]
    after = await facts_of(raw, session_id)
    assert after[:300] == before
    assert len(after) == 350
    assert sorted(ids_longer) == sorted(str(r[0]) for r in after)


async def test_a_keyed_batch_with_one_conflict_writes_nothing(
    l2: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    await l2.add_fact(session_id, "entity", "the original", idempotency_key="k-7")
    before = await facts_of(raw, session_id)
    records = batch(session_id, 20)  # k-7 has other content than the stored fact
    with pytest.raises(StorageDataError, match=r"^Record 7: Fact 'k-7' .* already exists"):
        await l2.store_many(records)
    assert await facts_of(raw, session_id) == before
    # Refused before sending: a key twice in one session, a bad key.
    records[7]["idempotency_key"] = "k-3"
    with pytest.raises(StorageDataError, match=r"^Records 3 and 7 share idempotency_key 'k-3'"):
        await l2.store_many(records)
    records[7]["idempotency_key"] = "x" * 256
    with pytest.raises(StorageDataError, match=r"^Record 7: Field 'idempotency_key'"):
        await l2.store_many(records)
    assert await facts_of(raw, session_id) == before


@pytest.mark.parametrize(
    "change",
    [
        {"fact_type": "goal"},
        {"content": "other"},
        {"confidence": 0.25},
        {"source_turn_ids": []},
        {"metadata": {"i": -1}},
    ],
)
async def test_a_batch_rerun_with_one_field_changed_is_refused(
    l2: PostgresAdapter, raw: Raw, session_id: str, change: dict[str, Any]
) -> None:
    records = batch(session_id, 4)
    for record in records:
        record["metadata"] = {"i": record["metadata"]["i"], "tag": "x"}
    ids = await l2.store_many(records)
    before = await facts_of(raw, session_id)
    # jsonb equality: the same metadata in another key order is the same fact.
    records[1]["metadata"] = {"tag": "x", "i": 1}
    assert await l2.store_many(records) == ids
    records[2] = {**records[2], **change}
    with pytest.raises(StorageDataError, match=r"^Record 2: Fact 'k-2' .* already exists"):
        await l2.store_many(records)
    assert await facts_of(raw, session_id) == before


async def test_concurrent_batches_sharing_keys_store_each_fact_once(
    l2: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    """Overlapping keys in opposite orders: one batch waits for the other, none deadlocks."""
    records = batch(session_id, 200)
    forward, backward = records[:150], records[50:][::-1]
    for _ in range(3):
        ids_forward, ids_backward = await asyncio.gather(
            l2.store_many(forward), l2.store_many(backward), return_exceptions=True
        )
        assert isinstance(ids_forward, list), ids_forward
        assert isinstance(ids_backward, list), ids_backward
        assert ids_forward[50:] == ids_backward[::-1][:100]
    stored = await facts_of(raw, session_id)
    assert sorted(r[9] for r in stored) == sorted(f"k-{i}" for i in range(200))


async def test_a_mixed_batch_protects_only_the_keyed_facts(
    l2: PostgresAdapter, raw: Raw, session_ids: Callable[[], str]
) -> None:
    a, b = session_ids(), session_ids()
    records = [*batch(a, 3), *batch(b, 3)]  # the same keys in two sessions
    records.append({"session_id": a, "fact_type": "entity", "content": "no key"})
    first = await l2.store_many(records)
    second = await l2.store_many(records)
    assert first[:6] == second[:6]
    assert first[6] != second[6]  # without a key a re-run stores the fact again
    assert len(await facts_of(raw, a)) == 5
    assert len(await facts_of(raw, b)) == 3


async def test_the_batch_table_never_outlives_its_transaction(
    pg_url: str, raw: Raw, session_id: str
) -> None:
    """One pooled connection runs keyed batches after a refused one: no leftover temp table."""
    config = {"url": pg_url, "table": "working_memory", "pool_size": 1, "min_size": 1}
    async with PostgresAdapter(config) as adapter:
        ids = await adapter.store_many(batch(session_id, 5))
        conflicting = batch(session_id, 5)
        conflicting[2]["content"] = "changed"
        with pytest.raises(StorageDataError, match=r"^Record 2"):
            await adapter.store_many(conflicting)
        assert await adapter.store_many(batch(session_id, 5)) == ids
        assert len(await adapter.store_many(batch(session_id, 3, prefix="new"))) == 3
        assert adapter.pool is not None
        async with adapter.pool.connection() as conn:
            cur = await conn.execute("SELECT to_regclass('pg_temp.mas_fact_batch')")
            assert await cur.fetchone() == (None,)
    assert len(await facts_of(raw, session_id)) == 8


async def test_an_expired_fact_still_holds_its_key(
    l2: PostgresAdapter, raw: Raw, session_id: str
) -> None:
    """Until the cleanup deletes it: a replay returns its id (hidden from reads) and adds none."""
    past = datetime.now(UTC) - timedelta(days=2)
    fact_id = await l2.add_fact(
        session_id, "goal", "old", created_at=past, ttl=timedelta(hours=1), idempotency_key="e"
    )
    assert await l2.add_fact(session_id, "goal", "old", idempotency_key="e") == fact_id
    assert await l2.get_facts(session_id) == []
    assert len(await facts_of(raw, session_id)) == 1
