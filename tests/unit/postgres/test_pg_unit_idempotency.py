"""Facts with an ``idempotency_key`` on the fake pool: validation, the statements chosen, and
the replay rule (same fields: the stored id; other fields: StorageDataError)."""

from __future__ import annotations

import json

import psycopg.errors as pe
import pytest
from pg_fakes import FakePool, Result
from psycopg.pq import DiagnosticField

from mas_storage import StorageDataError, StorageQueryError
from mas_storage_postgres import PostgresAdapter

Pair = tuple[PostgresAdapter, FakePool]
ON_CONFLICT = (
    "ON CONFLICT (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)


def fact(n: int, key: str | None = None, session: str = "s") -> dict[str, object]:
    record: dict[str, object] = {"session_id": session, "fact_type": "t", "content": f"c{n}"}
    if key is not None:
        record["idempotency_key"] = key
    return record


# -- add_fact ------------------------------------------------------------------------------


async def test_add_fact_with_a_key_inserts_once_with_on_conflict(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[(12,)]))
    assert await adapter.add_fact("s", "goal", "ship", 0.5, idempotency_key="k-1") == 12
    ((statement, params),) = [(s, p) for s, p in pool.executed if s != "SELECT 1"]
    assert statement.startswith("INSERT INTO working_memory (")
    assert statement.endswith(f"{ON_CONFLICT} RETURNING id")
    assert '"idempotency_key") VALUES' in statement
    assert params[:4] == ("s", "goal", "ship", 0.5)
    assert params[-1] == "k-1"
    assert pool.events == []  # one statement, no transaction


async def test_add_fact_without_a_key_is_the_plain_insert(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[(3,)]))
    assert await adapter.add_fact("s", "goal", "ship") == 3
    statement, params = pool.executed[-1]
    assert "ON CONFLICT" not in statement
    assert params[-1] is None


async def test_add_fact_replayed_with_the_same_fields_returns_the_stored_id(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[]), Result(rows=[(12, True)]))
    got = await adapter.add_fact(
        "s", "goal", "ship", 0.5, source_turn_ids=[2], metadata={"a": 1}, idempotency_key="k"
    )
    assert got == 12
    statement, params = pool.executed[-1]
    assert statement == (
        "SELECT id, (fact_type, content, confidence, source_turn_ids, metadata) "
        "IS NOT DISTINCT FROM (%s, %s, %s, %s::int4[], %s) "
        "FROM working_memory WHERE session_id = %s AND idempotency_key = %s"
    )
    fact_type, content, confidence, sources, metadata, session_id, key = params
    assert (fact_type, content, confidence, sources, session_id, key) == (
        "goal",
        "ship",
        0.5,
        [2],
        "s",
        "k",
    )
    assert json.loads(metadata.obj) == {"a": 1}


async def test_add_fact_with_a_taken_key_and_other_fields_is_a_clear_conflict(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[]), Result(rows=[(12, False)]))
    with pytest.raises(
        StorageDataError,
        match=r"Fact 'k' of session 's' already exists \(id 12\) with other content",
    ):
        await adapter.add_fact("s", "goal", "other", idempotency_key="k")


async def test_add_fact_whose_conflicting_fact_went_meanwhile_says_so(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[]), Result(rows=[]))
    with pytest.raises(StorageDataError, match="was deleted while this call stored it again"):
        await adapter.add_fact("s", "goal", "ship", idempotency_key="k")


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("", r"'idempotency_key' must be a non-empty string .*got ''"),
        (5, r"'idempotency_key' must be a non-empty string .*got int"),
        (b"k", r"'idempotency_key' must be a non-empty string .*got bytes"),
        (True, r"'idempotency_key' must be a non-empty string .*got bool"),
        ("k" * 256, "'idempotency_key' is longer than 255 characters"),
        ("a\x00b", "'idempotency_key' contains a NUL character"),
    ],
)
async def test_add_fact_refuses_bad_keys_before_sending(
    l1: Pair, key: object, fragment: str
) -> None:
    adapter, pool = l1
    with pytest.raises(StorageDataError, match=fragment):
        await adapter.add_fact("s", "goal", "ship", idempotency_key=key)  # type: ignore[arg-type]
    assert pool.statements() == []


async def test_a_key_of_255_characters_is_accepted(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[(1,)]))
    await adapter.add_fact("s", "goal", "ship", idempotency_key="é" * 255)
    assert pool.executed[-1][1][-1] == "é" * 255


# -- store / reads / update ----------------------------------------------------------------


async def test_store_of_a_keyed_fact_takes_the_replay_path(l2: Pair) -> None:
    adapter, pool = l2
    pool.script(Result(rows=[]), Result(rows=[(9, True)]))
    assert await adapter.store(fact(1, "k")) == "9"
    first, second = pool.statements()
    assert first.endswith(f"{ON_CONFLICT} RETURNING id")
    assert second.startswith("SELECT id, (fact_type, content")


async def test_store_with_a_none_key_is_the_plain_insert(l2: Pair) -> None:
    adapter, pool = l2
    pool.script(Result(rows=[(4,)]))
    assert await adapter.store({**fact(1), "idempotency_key": None}) == "4"
    assert "ON CONFLICT" not in pool.executed[-1][0]


async def test_turns_have_no_idempotency_key(l1: Pair) -> None:
    adapter, pool = l1
    with pytest.raises(StorageDataError, match="Unknown fields for active_context"):
        await adapter.store(
            {"session_id": "s", "turn_id": 1, "content": "x", "idempotency_key": "k"}
        )
    assert pool.statements() == []


async def test_reads_return_the_key(l2: Pair) -> None:
    adapter, pool = l2
    row = {"id": 4, "session_id": "s", "idempotency_key": "k", "metadata": {}}
    pool.script(Result(rows=[row]), Result(rows=[row]), Result(rows=[row]))
    assert (await adapter.retrieve("4"))["idempotency_key"] == "k"  # type: ignore[index]
    assert (await adapter.search({"session_id": "s"}))[0]["idempotency_key"] == "k"
    assert (await adapter.get_facts("s"))[0]["idempotency_key"] == "k"
    assert all('"idempotency_key" FROM' in statement for statement in pool.statements())


async def test_update_fact_never_touches_the_key(l2: Pair) -> None:
    adapter, pool = l2
    pool.script(Result(rowcount=1))
    await adapter.update_fact(
        4,
        content="c",
        confidence=0.5,
        fact_type="t",
        source_turn_ids=[1],
        metadata={},
        ttl_expires_at=None,
    )
    assert "idempotency_key" not in pool.executed[-1][0]


# -- store_many ----------------------------------------------------------------------------


async def test_store_many_without_keys_keeps_the_plain_copy(l2: Pair) -> None:
    adapter, pool = l2
    pool.script(Result(rows=[([1, 2],)]))
    assert await adapter.store_many([fact(1), {**fact(2), "idempotency_key": None}]) == ["1", "2"]
    _, copy_statement = pool.statements()
    assert copy_statement.startswith('COPY "working_memory" (')
    assert copy_statement.endswith('"idempotency_key") FROM STDIN (FORMAT BINARY)')
    (copier,) = pool.conn.copies
    assert copier.types[-1] == "text"
    assert [row[-1] for row in copier.rows] == [None, None]
    assert pool.events == ["begin", "commit"]


async def test_store_many_with_keys_goes_through_a_temporary_table(l2: Pair) -> None:
    adapter, pool = l2
    pool.script(
        Result(rows=[([10, 11, 12],)]),  # reserved ids
        Result(),  # CREATE TEMPORARY TABLE
        Result(),  # COPY
        Result(rows=[(10,), (11,), (12,)]),  # INSERT ... SELECT: all three are new
    )
    records = [fact(0, "a"), fact(1), fact(2, "a", session="other")]  # same key, other session
    assert await adapter.store_many(records) == ["10", "11", "12"]
    _, create, copy_statement, insert = pool.statements()
    assert create.startswith('CREATE TEMPORARY TABLE "mas_fact_batch" ON COMMIT DROP AS SELECT')
    assert create.endswith("FROM working_memory WITH NO DATA")
    assert copy_statement.startswith('COPY "mas_fact_batch" ("id", "session_id"')
    assert insert.startswith('INSERT INTO working_memory ("id", "session_id"')
    assert insert.endswith(
        f'FROM "mas_fact_batch" ORDER BY session_id, idempotency_key, id {ON_CONFLICT} RETURNING id'
    )
    (copier,) = pool.conn.copies
    assert [(row[0], row[-1]) for row in copier.rows] == [(10, "a"), (11, None), (12, "a")]
    assert pool.events == ["begin", "commit"]


async def test_store_many_rerun_returns_the_stored_ids_in_order(l2: Pair) -> None:
    adapter, pool = l2
    pool.script(
        Result(rows=[([20, 21, 22],)]),
        Result(),
        Result(),
        Result(rows=[(21,)]),  # only the middle one is new
        Result(rows=[(22, 7, True), (20, 5, True)]),  # the others exist, unchanged
    )
    records = [fact(0, "a"), fact(1, "b"), fact(2, "c")]
    assert await adapter.store_many(records) == ["5", "21", "7"]
    conflicts = pool.statements()[-1]
    assert conflicts.startswith("SELECT b.id, w.id, (")
    assert conflicts.endswith("WHERE b.idempotency_key IS NOT NULL AND w.id IS DISTINCT FROM b.id")
    assert pool.events == ["begin", "commit"]


@pytest.mark.parametrize(
    ("conflicts", "fragment"),
    [
        (
            [(32, 8, False), (31, 7, False)],  # the lowest record index is named
            r"^Record 1: Fact 'b' of session 's' already exists \(id 7\) with other content",
        ),
        ([(31, None, None)], r"^Record 1: Fact 'b' of session 's' was deleted while"),
    ],
)
async def test_store_many_with_a_conflicting_key_rolls_the_batch_back(
    l2: Pair, conflicts: list[tuple[object, ...]], fragment: str
) -> None:
    adapter, pool = l2
    pool.script(
        Result(rows=[([30, 31, 32],)]), Result(), Result(), Result(rows=[(30,)]), Result(conflicts)
    )
    with pytest.raises(StorageDataError, match=fragment):
        await adapter.store_many([fact(0, "a"), fact(1, "b"), fact(2, "c")])
    assert pool.events == ["begin", "rollback"]


async def test_store_many_refuses_a_key_repeated_in_one_session(l2: Pair) -> None:
    adapter, pool = l2
    records = [fact(0, "a"), fact(1, "b"), fact(2, "a")]
    with pytest.raises(
        StorageDataError, match=r"^Records 0 and 2 share idempotency_key 'a' of session 's'"
    ):
        await adapter.store_many(records)
    assert pool.statements() == []
    assert pool.events == []


async def test_store_many_names_the_record_with_a_bad_key(l2: Pair) -> None:
    adapter, pool = l2
    with pytest.raises(StorageDataError, match=r"^Record 1: Field 'idempotency_key'"):
        await adapter.store_many([fact(0, "a"), fact(1, "")])
    assert pool.statements() == []


# -- errors of other writers ---------------------------------------------------------------


async def test_a_missing_key_column_points_at_the_migrations(l2: Pair) -> None:
    adapter, pool = l2
    pool.script(
        Result(
            error=pe.UndefinedColumn(
                "x",
                info={
                    DiagnosticField.MESSAGE_PRIMARY: (
                        b'column "idempotency_key" of relation "working_memory" does not exist'
                    )
                },
            )
        )
    )
    with pytest.raises(StorageQueryError, match=r"older than the adapter.*uv run yoyo apply"):
        await adapter.store(fact(1))
