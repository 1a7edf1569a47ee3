"""The generic API on the fake pool: statements, bind parameters, validation, whitelists."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone

import psycopg.errors
import pytest
from pg_fakes import FakePool, Result
from psycopg.pq import DiagnosticField
from psycopg.types.json import Jsonb

from mas_storage import StorageDataError
from mas_storage_postgres import PostgresAdapter

Pair = tuple[PostgresAdapter, FakePool]
T0 = datetime(2025, 10, 20, 12, 0, tzinfo=UTC)


def jsonb_text(value: object) -> object:
    """The JSON text inside a ``Jsonb`` bind parameter."""
    assert isinstance(value, Jsonb)
    return json.loads(value.obj)


# -- store ---------------------------------------------------------------------------------


async def test_store_turn_binds_every_value_and_returns_the_id_as_text(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[(41,)]))
    data = {"session_id": "s-1", "turn_id": 3, "content": "Hi", "metadata": {"role": "user"}}
    before = copy.deepcopy(data)
    assert await adapter.store(data) == "41"
    assert data == before  # the caller's dict is never modified
    ((statement, params),) = [(s, p) for s, p in pool.executed if s != "SELECT 1"]
    assert statement == (
        'INSERT INTO "active_context" ("session_id", "turn_id", "content", "metadata", '
        '"created_at", "ttl_expires_at") VALUES (%s, %s, %s, %s, %s, %s) RETURNING id'
    )
    session_id, turn_id, content, metadata, created_at, ttl = params
    assert (session_id, turn_id, content) == ("s-1", 3, "Hi")
    assert jsonb_text(metadata) == {"role": "user"}
    assert created_at.tzinfo is not None
    assert ttl - created_at == timedelta(hours=24)


async def test_store_fact_fills_the_defaults(l2: Pair) -> None:
    adapter, pool = l2
    pool.script(Result(rows=[(7,)]))
    assert await adapter.store({"session_id": "s", "fact_type": "goal", "content": "ship"}) == "7"
    params = pool.executed[-1][1]
    session_id, fact_type, content, confidence, sources, metadata, created, updated, ttl, key = (
        params
    )
    assert (session_id, fact_type, content, confidence, sources) == ("s", "goal", "ship", 1.0, [])
    assert key is None  # no idempotency key: the plain INSERT, no ON CONFLICT
    assert "ON CONFLICT" not in pool.executed[-1][0]
    assert jsonb_text(metadata) == {}
    assert updated == created
    assert ttl - created == timedelta(days=7)


async def test_store_keeps_explicit_times_and_permanent_rows(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[(1,)]), Result(rows=[(2,)]))
    paris = timezone(timedelta(hours=2))
    created = datetime(2025, 1, 1, 14, 0, tzinfo=paris)
    await adapter.store(
        {
            "session_id": "s",
            "turn_id": 1,
            "content": "old",
            "created_at": created,
            "ttl_expires_at": created + timedelta(hours=1),
        }
    )
    await adapter.store({"session_id": "s", "turn_id": 2, "content": "x", "ttl_expires_at": None})
    first, second = pool.executed[-2][1], pool.executed[-1][1]
    assert first[4] == created
    assert first[5] == created + timedelta(hours=1)
    assert second[5] is None


async def test_store_accepts_iso_strings_with_an_offset(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[(1,)]))
    await adapter.store(
        {
            "session_id": "s",
            "turn_id": 1,
            "content": "x",
            "created_at": "2025-10-20T12:00:00+00:00",
            "ttl_expires_at": "2025-10-21T12:00:00Z",
        }
    )
    params = pool.executed[-1][1]
    assert params[4] == T0
    assert params[5] == T0 + timedelta(days=1)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (
            {"session_id": "s", "content": "x"},
            "Missing required fields for active_context: turn_id",
        ),
        ({"session_id": "s", "turn_id": 1, "content": "x", "ttl_expire_at": 1}, "Unknown fields"),
        ({"session_id": "", "turn_id": 1, "content": "x"}, "'session_id' must be a non-empty"),
        ({"session_id": "s" * 256, "turn_id": 1, "content": "x"}, "longer than 255"),
        ({"session_id": 5, "turn_id": 1, "content": "x"}, "'session_id' must be a non-empty"),
        ({"session_id": "s", "turn_id": -1, "content": "x"}, "between 0 and"),
        ({"session_id": "s", "turn_id": True, "content": "x"}, "'turn_id' must be an int"),
        ({"session_id": "s", "turn_id": "1", "content": "x"}, "'turn_id' must be an int"),
        ({"session_id": "s", "turn_id": 2**31, "content": "x"}, "between 0 and"),
        ({"session_id": "s", "turn_id": 1, "content": None}, "'content' must be a string"),
        ({"session_id": "s", "turn_id": 1, "content": "a\x00b"}, "NUL"),
        ({"session_id": "s", "turn_id": 1, "content": "x", "metadata": [1]}, "must be a dict"),
        (
            {"session_id": "s", "turn_id": 1, "content": "x", "metadata": {"f": object()}},
            "not JSON-serialisable",
        ),
        (
            {"session_id": "s", "turn_id": 1, "content": "x", "metadata": {"f": float("nan")}},
            "not JSON-serialisable",
        ),
        (
            {"session_id": "s", "turn_id": 1, "content": "x", "ttl_expires_at": datetime.now()},
            "naive datetime",
        ),
        (
            {"session_id": "s", "turn_id": 1, "content": "x", "created_at": "2025-10-20T12:00"},
            "naive datetime",
        ),
        (
            {"session_id": "s", "turn_id": 1, "content": "x", "created_at": "yesterday"},
            "not an ISO-8601",
        ),
        ({"session_id": "s", "turn_id": 1, "content": "x", "created_at": 5}, "timezone-aware"),
        (["not", "a", "dict"], "must be a dict"),
    ],
)
async def test_store_refuses_bad_turns_before_sending_anything(
    l1: Pair, data: object, fragment: str
) -> None:
    adapter, pool = l1
    with pytest.raises(StorageDataError, match=fragment):
        await adapter.store(data)  # type: ignore[arg-type]
    assert pool.statements() == []


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"session_id": "s", "content": "x"}, "Missing required fields for working_memory"),
        ({"session_id": "s", "fact_type": "", "content": "x"}, "'fact_type' must not be empty"),
        ({"session_id": "s", "fact_type": "t" * 51, "content": "x"}, "longer than 50"),
        ({"session_id": "s", "fact_type": "t", "content": "x", "confidence": 1.5}, "between 0.0"),
        ({"session_id": "s", "fact_type": "t", "content": "x", "confidence": -0.1}, "between 0.0"),
        (
            {"session_id": "s", "fact_type": "t", "content": "x", "confidence": float("nan")},
            "between 0.0",
        ),
        ({"session_id": "s", "fact_type": "t", "content": "x", "confidence": "1"}, "a number"),
        (
            {"session_id": "s", "fact_type": "t", "content": "x", "source_turn_ids": "12"},
            "list of ints",
        ),
        (
            {"session_id": "s", "fact_type": "t", "content": "x", "source_turn_ids": [1, "2"]},
            "non-turn id",
        ),
        ({"session_id": "s", "fact_type": "t", "content": "x", "turn_id": 1}, "Unknown fields"),
    ],
)
async def test_store_refuses_bad_facts(l2: Pair, data: dict, fragment: str) -> None:
    adapter, pool = l2
    with pytest.raises(StorageDataError, match=fragment):
        await adapter.store(data)
    assert pool.statements() == []


async def test_a_new_row_cannot_be_born_expired(l1: Pair) -> None:
    adapter, pool = l1
    past = datetime.now(UTC) - timedelta(hours=1)
    with pytest.raises(StorageDataError, match=r"cannot be born expired.*real 'created_at'"):
        await adapter.store(
            {"session_id": "s", "turn_id": 1, "content": "x", "ttl_expires_at": past}
        )
    with pytest.raises(StorageDataError, match="must be later than 'created_at'"):
        await adapter.store(
            {
                "session_id": "s",
                "turn_id": 1,
                "content": "x",
                "created_at": T0,
                "ttl_expires_at": T0,
            }
        )
    assert pool.statements() == []


async def test_backdated_rows_may_already_be_expired(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[(9,)]))
    created = datetime.now(UTC) - timedelta(days=2)
    await adapter.store(
        {
            "session_id": "s",
            "turn_id": 1,
            "content": "x",
            "created_at": created,
            "ttl_expires_at": created + timedelta(hours=1),
        }
    )
    assert pool.executed[-1][1][5] < datetime.now(UTC)


async def test_duplicate_turn_from_the_server_is_a_data_error(l1: Pair) -> None:
    adapter, pool = l1
    duplicate = psycopg.errors.UniqueViolation(
        "duplicate key value violates unique constraint",
        info={
            DiagnosticField.CONSTRAINT_NAME: b"unique_session_turn",
            DiagnosticField.MESSAGE_DETAIL: b"Key (session_id, turn_id)=(s, 1) already exists.",
        },
    )
    pool.script(Result(error=duplicate))
    with pytest.raises(StorageDataError, match="unique_session_turn") as info:
        await adapter.store({"session_id": "s", "turn_id": 1, "content": "x"})
    assert "already exists" in str(info.value)
    assert info.value.orig is duplicate


# -- retrieve / delete ---------------------------------------------------------------------


async def test_retrieve_converts_the_row(l1: Pair) -> None:
    adapter, pool = l1
    row = {
        "id": 5,
        "session_id": "s",
        "turn_id": 1,
        "content": "x",
        "metadata": {"role": "user"},
        "created_at": datetime(2025, 10, 20, 14, 0, tzinfo=timezone(timedelta(hours=2))),
        "ttl_expires_at": None,
    }
    pool.script(Result(rows=[row]))
    got = await adapter.retrieve("5")
    assert got == {
        "id": "5",
        "session_id": "s",
        "turn_id": 1,
        "content": "x",
        "metadata": {"role": "user"},
        "created_at": "2025-10-20T12:00:00+00:00",
        "ttl_expires_at": None,
    }
    statement, params = pool.executed[-1]
    assert params == (5,)
    assert statement.endswith(
        "WHERE id = %s AND (ttl_expires_at IS NULL OR ttl_expires_at > now())"
    )


async def test_retrieve_missing_is_none_and_expired_can_be_asked_for(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[]), Result(rows=[{"id": 1, "metadata": None}]))
    assert await adapter.retrieve("1") is None
    assert await adapter.retrieve(1, include_expired=True) == {"id": "1", "metadata": {}}
    assert pool.executed[-1][0].endswith("WHERE id = %s")


async def test_metadata_as_json_text_is_decoded(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[{"id": 1, "metadata": '{"a": 1}'}]))
    assert (await adapter.retrieve("1"))["metadata"] == {"a": 1}


@pytest.mark.parametrize("bad", ["abc", "", "1; DROP TABLE active_context", "-1", "0", "1.5", True])
async def test_bad_ids_are_data_errors(l1: Pair, bad: object) -> None:
    adapter, pool = l1
    with pytest.raises(StorageDataError, match=r"(?i)record id"):
        await adapter.retrieve(bad)  # type: ignore[arg-type]
    with pytest.raises(StorageDataError, match=r"(?i)record id"):
        await adapter.delete(bad)  # type: ignore[arg-type]
    assert pool.statements() == []


async def test_id_out_of_int4_range_is_a_data_error(l1: Pair) -> None:
    adapter, _ = l1
    with pytest.raises(StorageDataError, match="out of range"):
        await adapter.retrieve(str(2**31))


async def test_delete_reports_whether_a_row_went(l2: Pair) -> None:
    adapter, pool = l2
    pool.script(Result(rowcount=1), Result(rowcount=0))
    assert await adapter.delete("3") is True
    assert await adapter.delete("3") is False
    assert pool.executed[-1] == ('DELETE FROM "working_memory" WHERE id = %s', (3,))


# -- search --------------------------------------------------------------------------------


async def test_search_defaults(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[{"id": 2, "turn_id": 2}, {"id": 1, "turn_id": 1}]))
    rows = await adapter.search({"session_id": "s"})
    assert [r["id"] for r in rows] == ["2", "1"]
    statement, params = pool.executed[-1]
    assert "WHERE session_id = %s AND (ttl_expires_at IS NULL OR ttl_expires_at > now())" in (
        statement
    )
    assert statement.endswith('ORDER BY "turn_id" DESC, id DESC LIMIT %s OFFSET %s')
    assert params == ["s", 10, 0]


async def test_search_with_every_fact_filter(l2: Pair) -> None:
    adapter, pool = l2
    pool.script(Result(rows=[]))
    query = {
        "session_id": "s",
        "fact_type": "preference",
        "min_confidence": 0.5,
        "include_expired": True,
        "sort": "confidence",
        "order": "ASC",
        "limit": 3,
        "offset": 6,
    }
    assert await adapter.search(query) == []
    statement, params = pool.executed[-1]
    assert "WHERE session_id = %s AND fact_type = %s AND confidence >= %s ORDER BY" in statement
    assert "ttl_expires_at > now()" not in statement
    assert statement.endswith('ORDER BY "confidence" ASC, id ASC LIMIT %s OFFSET %s')
    assert params == ["s", "preference", 0.5, 3, 6]


async def test_search_without_filters_and_by_turn(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(), Result())
    await adapter.search({"include_expired": True})
    assert 'FROM "active_context" WHERE TRUE ORDER BY' in pool.executed[-1][0]
    await adapter.search({"session_id": "s", "turn_id": 4})
    assert pool.executed[-1][1][:2] == ["s", 4]


@pytest.mark.parametrize(
    "sort",
    [
        "content; DROP TABLE active_context; --",
        "id DESC, (SELECT 1)",
        "pg_sleep(10)",
        3,
        "fact_type",
    ],
)
async def test_sort_outside_the_whitelist_is_refused_with_the_allowed_list(
    l1: Pair, sort: object
) -> None:
    adapter, pool = l1
    with pytest.raises(StorageDataError) as info:
        await adapter.search({"session_id": "s", "sort": sort})
    assert "allowed: id, session_id, turn_id, created_at, ttl_expires_at" in str(info.value)
    assert pool.statements() == []


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"order": "sideways"}, "'order' must be 'asc' or 'desc'"),
        ({"order": "desc; DROP"}, "'order' must be 'asc' or 'desc'"),
        ({"order": 1}, "'order' must be"),
        ({"limit": 0}, "'limit' must be an integer between 1 and 10000"),
        ({"limit": 10_001}, "'limit'"),
        ({"limit": "5"}, "'limit'"),
        ({"offset": -1}, "'offset'"),
        ({"include_expired": "yes"}, "'include_expired' must be true or false"),
        ({"fact_type": "goal"}, "Unknown search keys for active_context: fact_type"),
        ({"where": "1=1"}, "Unknown search keys"),
        ({"session_id": ""}, "'session_id'"),
    ],
)
async def test_search_refuses_bad_queries(l1: Pair, query: dict, fragment: str) -> None:
    adapter, pool = l1
    with pytest.raises(StorageDataError, match=fragment):
        await adapter.search(query)
    assert pool.statements() == []


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"fact_type": ""}, "'fact_type' must be a non-empty string"),
        ({"min_confidence": 2}, "'min_confidence'"),
        ({"min_confidence": True}, "'min_confidence'"),
        ({"sort": "turn_id"}, "allowed: id, session_id, fact_type, confidence"),
    ],
)
async def test_fact_search_refuses_bad_queries(l2: Pair, query: dict, fragment: str) -> None:
    adapter, pool = l2
    with pytest.raises(StorageDataError, match=fragment):
        await adapter.search(query)
    assert pool.statements() == []


async def test_search_needs_a_dict(l1: Pair) -> None:
    adapter, _ = l1
    with pytest.raises(StorageDataError, match="must be a dict"):
        await adapter.search("session_id = 's'")  # type: ignore[arg-type]


# -- count / delete_expired ----------------------------------------------------------------


async def test_count_variants(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[(4,)]), Result(rows=[(9,)]))
    assert await adapter.count() == 4
    assert pool.executed[-1] == (
        'SELECT count(*) FROM "active_context" WHERE '
        "(ttl_expires_at IS NULL OR ttl_expires_at > now())",
        [],
    )
    assert await adapter.count("s", include_expired=True) == 9
    assert pool.executed[-1] == (
        'SELECT count(*) FROM "active_context" WHERE session_id = %s',
        ["s"],
    )


async def test_delete_expired_calls_the_tables_cleanup_function(l2: Pair) -> None:
    adapter, pool = l2
    pool.script(Result(rows=[(3,)]), Result(rows=[(0,)]))
    assert await adapter.delete_expired() == 3
    assert pool.executed[-1][0] == 'SELECT "cleanup_expired_working_memory"()'
    assert await adapter.delete_expired() == 0


# -- store_many ----------------------------------------------------------------------------


async def test_store_many_copies_with_preallocated_ids(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[([10, 11],)]))
    records = [
        {"session_id": "s", "turn_id": 1, "content": "a"},
        {"session_id": "s", "turn_id": 2, "content": "b", "metadata": {"k": 1}},
    ]
    before = copy.deepcopy(records)
    assert await adapter.store_many(records) == ["10", "11"]
    assert records == before
    sequence, copy_statement = pool.statements()
    assert "pg_get_serial_sequence(%s, 'id')::regclass" in sequence
    assert "array_agg(nextval(s.seq))" in sequence
    assert pool.executed[-2][1] == ("active_context", 2)
    assert copy_statement == (
        'COPY "active_context" ("id", "session_id", "turn_id", "content", "metadata", '
        '"created_at", "ttl_expires_at") FROM STDIN (FORMAT BINARY)'
    )
    (copier,) = pool.conn.copies
    assert copier.types[:3] == ["int4", "text", "int4"]
    assert [row[:4:3] for row in copier.rows] == [(10, "a"), (11, "b")]
    assert jsonb_text(copier.rows[1][4]) == {"k": 1}
    assert pool.events == ["begin", "commit"]


async def test_store_many_of_facts_uses_the_fact_types(l2: Pair) -> None:
    adapter, pool = l2
    pool.script(Result(rows=[([1],)]))
    await adapter.store_many(
        [{"session_id": "s", "fact_type": "t", "content": "c", "source_turn_ids": [1, 2]}]
    )
    (copier,) = pool.conn.copies
    assert copier.types[4:6] == ["float8", "int4[]"]
    assert copier.rows[0][5] == [1, 2]


async def test_store_many_refuses_the_batch_naming_the_bad_record(l1: Pair) -> None:
    adapter, pool = l1
    records = [{"session_id": "s", "turn_id": i, "content": "x"} for i in range(5)]
    records[3] = {"session_id": "s", "turn_id": -3, "content": "x"}
    with pytest.raises(StorageDataError, match=r"^Record 3: Field 'turn_id'"):
        await adapter.store_many(records)
    assert pool.statements() == []
    assert pool.events == []


async def test_store_many_rolls_back_when_the_server_refuses_a_row(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[([1, 2],)]))
    pool.conn.copy_error = psycopg.errors.UniqueViolation("duplicate key")
    with pytest.raises(StorageDataError):
        await adapter.store_many(
            [
                {"session_id": "s", "turn_id": 1, "content": "x"},
                {"session_id": "s", "turn_id": 1, "content": "x"},
            ]
        )
    assert pool.events == ["begin", "rollback"]


async def test_store_many_of_nothing_sends_nothing(l1: Pair) -> None:
    adapter, pool = l1
    assert await adapter.store_many([]) == []
    assert pool.statements() == []
