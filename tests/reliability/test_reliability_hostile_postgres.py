"""Hostile input against PostgresAdapter on the real server (issue #11).

Every method that takes caller data gets 500 generated calls: random dicts, wrong types, huge
strings, NUL bytes (PostgreSQL refuses them in text), lone surrogates, RTL and emoji text, and
SQL injection in sort fields, orders and ids. Each call must return or raise a StorageError, and
a refused call must leave the database as it was.

The adapters work in a private database (``test_hostile_<hex>``, migrated with yoyo, dropped
afterwards), so the state compared before and after each call is the whole of both tables (an
md5 of every row) plus the number of relations in the schema (a ``DROP TABLE`` would show).
Accepted writes are checked against what the server holds, then deleted.

The adapters log in as the schema owner (the admin outputs' ``postgres_owner_url``, which
owns the private database): a credential that may ``DROP`` and ``ALTER``, so an injection the
adapter let through would show, not be masked by the least-privileged role's refusals (those
are ``tests/integration/test_least_privilege.py``'s).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from hostile import (
    INJECTIONS,
    HostileFixture,
    any_value,
    arguments,
    explore,
    hostile_session,
    hostile_text,
    huge_text,
    json_objects,
    maybe,
    records,
)
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from yoyo import get_backend, read_migrations

from mas_storage_postgres import PostgresAdapter, yoyo_database_url

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
NS = uuid.uuid4().hex[:10]
SEED_SESSIONS = (f"seed-{NS}-a", f"seed-{NS}-\u05e9\u05dc\u05d5\u05dd-\U0001f600")
TABLES = ("active_context", "working_memory")
INT4_MAX = 2**31 - 1

SNAPSHOT = sql.SQL(
    "SELECT (SELECT count(*) FROM active_context), "
    "(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) FROM active_context t), "
    "(SELECT count(*) FROM working_memory), "
    "(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) FROM working_memory t), "
    "(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public')"
)


@dataclass(repr=False)
class Pg(HostileFixture):
    """The module's adapters (L1 and L2 tables), the raw connection and the seed rows."""

    l1: PostgresAdapter
    l2: PostgresAdapter
    raw: AsyncConnectionPool
    #: Each table's seed rows as ``SELECT *`` returned them, and its column names.
    seeds: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    columns: dict[str, list[str]] = field(default_factory=dict)

    def query(self, statement: Any, params: Any = ()) -> list[tuple[Any, ...]]:
        async def go() -> list[tuple[Any, ...]]:
            async with self.raw.connection() as conn:
                cur = await conn.execute(statement, params)
                return await cur.fetchall() if cur.description else []

        return self.run(go())

    def seed_ids(self, table: str) -> list[int]:
        return [row[0] for row in self.seeds[table]]

    def drop_rows(self, table: str, ids: list[Any]) -> None:
        """Delete rows an accepted write added (the seeds are never among them)."""
        keep = set(self.seed_ids(table))
        gone = [int(i) for i in ids if int(i) not in keep]
        self.query(
            sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(sql.Identifier(table)), (gone,)
        )

    def reset(self) -> None:
        """Both tables back to exactly the seed rows."""
        self.query("DELETE FROM active_context")
        self.query("DELETE FROM working_memory")
        self.restore_seeds()

    def restore_seeds(self) -> None:
        """Put back seed rows an accepted delete or clear removed, exactly as they were."""
        for table, rows in self.seeds.items():
            columns = self.columns[table]
            insert = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
                sql.Identifier(table),
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            )
            for row in rows:
                values = [
                    Jsonb(v) if c == "metadata" else v for c, v in zip(columns, row, strict=True)
                ]
                self.query(insert, values)


def _apply_migrations(url: str) -> None:
    backend = get_backend(yoyo_database_url(url))
    try:
        with backend.lock():
            backend.apply_migrations(backend.to_apply(read_migrations(str(MIGRATIONS))))
    finally:
        backend.connection.close()


@pytest.fixture(autouse=True)
def _fresh(pg: Pg) -> None:
    """Each property starts from the seeds, whatever an earlier one left behind."""
    pg.fresh()


@pytest.fixture(scope="module")
def pg(stack_outputs: dict[str, Any], stack_admin: dict[str, Any]) -> Iterator[Pg]:
    admin_url = str(stack_admin["postgres_owner_url"])
    name = f"test_hostile_{NS}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    try:
        _apply_migrations(url)
        with hostile_session(stack_outputs, "postgres") as session:
            loop = session.loop
            config = {"url": url, "pool_size": 2, "min_size": 1, "timeout": 10}
            l1 = PostgresAdapter({**config, "table": "active_context"})
            l2 = PostgresAdapter({**config, "table": "working_memory"})
            # The checker's own connection: one, checked before use (it survives a restart).
            raw = AsyncConnectionPool(
                url,
                min_size=1,
                max_size=1,
                kwargs={"autocommit": True},
                check=AsyncConnectionPool.check_connection,
                open=False,
            )
            loop.run(raw.open(wait=True))
            loop.run(l1.connect())
            loop.run(l2.connect())

            async def snapshot() -> tuple[Any, ...]:
                async with raw.connection() as conn:
                    cur = await conn.execute(SNAPSHOT)
                    row = await cur.fetchone()
                assert row is not None
                return tuple(row)

            env = Pg(session, session.guard(snapshot), l1, l2, raw)
            for sid in SEED_SESSIONS:
                for turn in (1, 2, 3):
                    loop.run(l1.store({"session_id": sid, "turn_id": turn, "content": f"t{turn}"}))
                loop.run(l2.add_fact(sid, "preference", "likes \U0001f600", 0.75))
                loop.run(l2.add_fact(sid, "fact", "\u202eRTL", 0.5, source_turn_ids=[1, 2]))
            for table in TABLES:
                env.seeds[table] = env.query(
                    sql.SQL("SELECT * FROM {} ORDER BY id").format(sql.Identifier(table))
                )
                columns = env.query(
                    "SELECT column_name::text FROM information_schema.columns "
                    "WHERE table_name = %s ORDER BY ordinal_position",
                    (table,),
                )
                env.columns[table] = [name for (name,) in columns]
            try:
                yield env
            finally:
                loop.run(l1.disconnect())
                loop.run(l2.disconnect())
                loop.run(raw.close())
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# -- strategies --------------------------------------------------------------------------------

_no_nul = st.characters(exclude_characters="\x00")
text_ok = st.one_of(
    st.text(_no_nul, max_size=60),
    st.text(_no_nul, max_size=60),
    st.sampled_from(["", "\u202e\u05e9", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "'--"]),
    huge_text().filter(lambda s: "\x00" not in s and "\ud800" not in s),
)
session_ids = st.one_of(
    st.sampled_from(SEED_SESSIONS), st.text(_no_nul, min_size=1, max_size=255), st.text()
)
turn_ids = st.one_of(st.integers(0, INT4_MAX), st.integers(-5, 5))
aware = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
past = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2020, 1, 1), timezones=st.just(UTC)
)
future = st.datetimes(
    min_value=datetime(2100, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
#: Mostly valid times (created in the past, expiring in the future), sometimes any.
created = st.one_of(st.none(), past, past.map(datetime.isoformat), aware)
expiring = st.one_of(st.none(), future, future.map(datetime.isoformat), aware)
metadata = json_objects(st.floats(-1e15, 1e15, allow_nan=False))
confidence = st.one_of(st.floats(0, 1), st.floats(), st.integers(-1, 2))
fact_types = st.one_of(st.sampled_from(["preference", "fact"]), st.text(_no_nul, max_size=60))
source_turns = st.one_of(st.none(), st.lists(turn_ids, max_size=4))
sql_text = hostile_text(injections=INJECTIONS["sql"])
#: Idempotency keys of facts (migration 0002): none, valid, SQL injections, over-long, NUL.
idempotency_keys = st.one_of(
    st.none(), st.text(_no_nul, min_size=1, max_size=255), sql_text, st.text(), st.integers()
)

TURN_FIELDS = {
    "session_id": session_ids,
    "turn_id": turn_ids,
    "content": text_ok,
    "metadata": metadata,
    "created_at": created,
    "ttl_expires_at": expiring,
}
FACT_FIELDS = {
    "session_id": session_ids,
    "fact_type": fact_types,
    "content": text_ok,
    "confidence": confidence,
    "source_turn_ids": source_turns,
    "metadata": metadata,
    "created_at": created,
    "updated_at": created,
    "ttl_expires_at": expiring,
    "idempotency_key": idempotency_keys,
}


def record_ids(pg: Pg, table: str) -> st.SearchStrategy[Any]:
    digits = st.integers(0, 2**40).map(str)
    return st.one_of(
        st.sampled_from(pg.seed_ids(table)),
        st.sampled_from(pg.seed_ids(table)).map(str),
        st.integers(),
        digits,
        st.sampled_from(["1 OR 1=1", "1; DROP TABLE active_context", "0x1", "\uff11", "1.0", ""]),
        hostile_text(injections=INJECTIONS["sql"]),
        any_value(),
    )


# -- checks ------------------------------------------------------------------------------------


def _json_normal(value: Any) -> Any:
    return json.loads(json.dumps(value or {}))


def _instant(value: Any) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def check_row(pg: Pg, table: str, record_id: Any, given: dict[str, Any]) -> None:
    """The server holds exactly what an accepted write was given."""
    rows = pg.query(
        sql.SQL("SELECT row_to_json(t)::text FROM {} t WHERE id = %s").format(
            sql.Identifier(table)
        ),
        (int(record_id),),
    )
    assert len(rows) == 1, f"accepted write {record_id} of {table} is not in the table"
    row = json.loads(rows[0][0])
    for key in (
        "session_id",
        "turn_id",
        "content",
        "fact_type",
        "source_turn_ids",
        "idempotency_key",
    ):
        if key in given:
            expected = given[key]
            if key == "source_turn_ids":
                expected = list(expected or [])
            assert row[key] == expected, f"{key}: stored {row[key]!r}, given {expected!r}"
    if "confidence" in given:
        assert row["confidence"] == float(given["confidence"])
    if "metadata" in given:
        assert row["metadata"] == _json_normal(given["metadata"])
    for key in ("created_at", "ttl_expires_at"):
        if given.get(key) is not None:
            assert datetime.fromisoformat(row[key]) == _instant(given[key]), key


def _nothing_deleted(value: Any) -> bool:
    """``pure`` for deletes: an answer of "nothing there" must have changed nothing."""
    return value is False or value == {"active_context": 0, "working_memory": 0}


# -- the properties ----------------------------------------------------------------------------


def test_store_turns(pg: Pg) -> None:
    def body(record: Any) -> None:
        out = pg.guard.attempt("store(turn)", lambda: pg.l1.store(record), inputs=[record])
        if out.ok:
            check_row(pg, "active_context", out.value, record)
            pg.drop_rows("active_context", [out.value])

    explore("pg.store.turns", records(TURN_FIELDS), body)
    pg.guard.assert_exercised("store(turn)")


def test_store_facts(pg: Pg) -> None:
    def body(record: Any) -> None:
        out = pg.guard.attempt("store(fact)", lambda: pg.l2.store(record), inputs=[record])
        if out.ok:
            check_row(pg, "working_memory", out.value, record)
            pg.drop_rows("working_memory", [out.value])

    explore("pg.store.facts", records(FACT_FIELDS), body)
    pg.guard.assert_exercised("store(fact)")


def test_store_many(pg: Pg) -> None:
    batches = st.tuples(
        st.sampled_from([("active_context", TURN_FIELDS), ("working_memory", FACT_FIELDS)]),
        st.data(),
    )

    def body(example: Any) -> None:
        (table, fields), data = example
        batch = data.draw(st.one_of(st.lists(records(fields), max_size=4), any_value()))
        adapter = pg.l1 if table == "active_context" else pg.l2
        out = pg.guard.attempt("store_many", lambda: adapter.store_many(batch), inputs=[batch])
        if out.ok:
            assert len(out.value) == len(list(batch))
            for record_id, record in zip(out.value, batch, strict=True):
                check_row(pg, table, record_id, record)
            pg.drop_rows(table, out.value)

    explore("pg.store_many", batches, body)
    pg.guard.assert_exercised("store_many")


def test_retrieve(pg: Pg) -> None:
    ids = st.tuples(st.sampled_from(TABLES), st.data())

    def body(example: Any) -> None:
        table, data = example
        record_id = data.draw(record_ids(pg, table))
        adapter = pg.l1 if table == "active_context" else pg.l2
        out = pg.guard.attempt("retrieve", lambda: adapter.retrieve(record_id), pure=True)
        if out.ok and out.value is not None:
            assert int(out.value["id"]) in pg.seed_ids(table)
            assert out.value["id"] == str(int(record_id))

    explore("pg.retrieve", ids, body)
    pg.guard.assert_exercised("retrieve")


def _search_fields(table: str) -> dict[str, st.SearchStrategy[Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {
        "session_id": session_ids,
        "limit": st.one_of(st.integers(1, 10_000), st.integers()),
        "offset": st.one_of(st.integers(0, 10), st.integers()),
        "sort": st.one_of(
            st.sampled_from(["id", "session_id", "created_at", "turn_id", "confidence"]), sql_text
        ),
        "order": st.one_of(st.sampled_from(["asc", "desc", "ASC", "Desc"]), sql_text),
        "include_expired": st.booleans(),
    }
    if table == "active_context":
        fields["turn_id"] = turn_ids
    else:
        fields |= {"fact_type": fact_types, "min_confidence": confidence}
    return fields


@pytest.mark.parametrize("table", TABLES)
def test_search(pg: Pg, table: str) -> None:
    adapter = pg.l1 if table == "active_context" else pg.l2
    op = f"search({table})"

    def body(query: Any) -> None:
        out = pg.guard.attempt(op, lambda: adapter.search(query), pure=True, inputs=[query])
        if out.ok:
            assert len(out.value) <= query.get("limit", 10)
            for row in out.value:
                assert int(row["id"]) in pg.seed_ids(table)
                for key in ("session_id", "turn_id", "fact_type"):
                    if key in query:
                        assert row[key] == query[key], f"search returned a row of another {key}"

    explore(f"pg.search.{table}", records(_search_fields(table), omit=0.5), body)
    pg.guard.assert_exercised(op)


def test_delete(pg: Pg) -> None:
    ids = st.tuples(st.sampled_from(TABLES), st.data())

    def body(example: Any) -> None:
        table, data = example
        record_id = data.draw(record_ids(pg, table))
        adapter = pg.l1 if table == "active_context" else pg.l2
        out = pg.guard.attempt("delete", lambda: adapter.delete(record_id), pure=_nothing_deleted)
        if out.ok and out.value:
            assert int(record_id) in pg.seed_ids(table)
            pg.restore_seeds()

    explore("pg.delete", ids, body)
    pg.guard.assert_exercised("delete")


def test_add_turn(pg: Pg) -> None:
    ttl = st.one_of(
        st.none(), aware, st.timedeltas(), st.timedeltas(min_value=timedelta(seconds=1))
    )
    args = records(
        {
            "session_id": session_ids,
            "content": text_ok,
            "metadata": metadata,
            "turn_id": st.one_of(st.none(), turn_ids, st.sampled_from([1, 2, 3])),
            "ttl": ttl,
            "created_at": st.one_of(st.none(), aware),
        },
        omit=0.05,
    )

    def body(kwargs: Any) -> None:
        if not isinstance(kwargs, dict):
            kwargs = {"session_id": kwargs, "content": kwargs}
        kwargs = {str(k): v for k, v in kwargs.items() if str(k) in _ADD_TURN_ARGS}
        out = pg.guard.attempt("add_turn", lambda: pg.l1.add_turn(**kwargs), inputs=[kwargs])
        if out.ok:
            rows = pg.query(
                "SELECT id, content FROM active_context WHERE session_id = %s AND turn_id = %s",
                (kwargs["session_id"], out.value),
            )
            assert len(rows) == 1, "add_turn returned a turn the table does not hold once"
            assert rows[0][1] == kwargs["content"]
            pg.drop_rows("active_context", [rows[0][0]])

    explore("pg.add_turn", args, body)
    pg.guard.assert_exercised("add_turn")


_ADD_TURN_ARGS = {"session_id", "content", "metadata", "turn_id", "ttl", "created_at"}
_ADD_FACT_ARGS = {
    "session_id",
    "fact_type",
    "content",
    "confidence",
    "source_turn_ids",
    "metadata",
    "ttl",
    "created_at",
    "idempotency_key",
}


def test_add_fact(pg: Pg) -> None:
    args = records(
        {
            "session_id": session_ids,
            "fact_type": fact_types,
            "content": text_ok,
            "confidence": confidence,
            "source_turn_ids": source_turns,
            "metadata": metadata,
            "ttl": st.one_of(st.none(), aware, st.timedeltas()),
            "created_at": st.one_of(st.none(), aware),
            "idempotency_key": idempotency_keys,
        },
        omit=0.05,
    )

    def body(kwargs: Any) -> None:
        if not isinstance(kwargs, dict):
            kwargs = {"session_id": kwargs, "fact_type": kwargs, "content": kwargs}
        kwargs = {str(k): v for k, v in kwargs.items() if str(k) in _ADD_FACT_ARGS}
        out = pg.guard.attempt("add_fact", lambda: pg.l2.add_fact(**kwargs), inputs=[kwargs])
        if out.ok:
            given = {k: v for k, v in kwargs.items() if k not in ("ttl", "created_at")}
            check_row(pg, "working_memory", out.value, given)
            pg.drop_rows("working_memory", [out.value])

    explore("pg.add_fact", args, body)
    pg.guard.assert_exercised("add_fact")


def test_get_facts(pg: Pg) -> None:
    args = arguments(
        session_ids,
        st.one_of(st.none(), fact_types),
        st.one_of(st.none(), confidence),
        st.integers(1, 10_000),
        st.booleans(),
    )

    def body(example: Any) -> None:
        session, fact_type, conf, limit, expired = example
        out = pg.guard.attempt(
            "get_facts",
            lambda: pg.l2.get_facts(session, fact_type, conf, limit=limit, include_expired=expired),
            pure=True,
        )
        if out.ok:
            for row in out.value:
                assert row["session_id"] == session
                if fact_type is not None:
                    assert row["fact_type"] == fact_type

    explore("pg.get_facts", args, body)
    pg.guard.assert_exercised("get_facts")


def test_update_fact(pg: Pg) -> None:
    fields = {
        "content": text_ok,
        "confidence": confidence,
        "fact_type": fact_types,
        "source_turn_ids": source_turns,
        "metadata": metadata,
        "ttl_expires_at": st.one_of(st.none(), aware),
    }
    args = st.tuples(record_ids(pg, "working_memory"), records(fields, omit=0.6))

    def body(example: Any) -> None:
        fact_id, changes = example
        if not isinstance(changes, dict):
            changes = {"content": changes}
        changes = {str(k): v for k, v in changes.items() if str(k) in fields}
        out = pg.guard.attempt(
            "update_fact",
            lambda: pg.l2.update_fact(fact_id, **changes),
            pure=lambda v: v is False,
            inputs=[changes],
        )
        if out.ok and out.value:
            given = {k: v for k, v in changes.items() if v is not None}
            check_row(pg, "working_memory", fact_id, given)

    explore("pg.update_fact", args, body)
    pg.guard.assert_exercised("update_fact")


def test_get_recent_turns(pg: Pg) -> None:
    args = arguments(session_ids, st.integers(1, 10_000), st.booleans())

    def body(example: Any) -> None:
        session, limit, expired = example
        out = pg.guard.attempt(
            "get_recent_turns",
            lambda: pg.l1.get_recent_turns(session, limit, include_expired=expired),
            pure=True,
        )
        if out.ok:
            assert len(out.value) <= limit
            assert all(row["session_id"] == session for row in out.value)

    explore("pg.get_recent_turns", args, body)
    pg.guard.assert_exercised("get_recent_turns")


def test_delete_turn(pg: Pg) -> None:
    args = arguments(session_ids, st.one_of(turn_ids, st.sampled_from([1, 2, 3])))

    def body(example: Any) -> None:
        session, turn = example
        out = pg.guard.attempt(
            "delete_turn", lambda: pg.l1.delete_turn(session, turn), pure=_nothing_deleted
        )
        if out.ok and out.value:
            assert session in SEED_SESSIONS
            pg.restore_seeds()

    explore("pg.delete_turn", args, body)
    pg.guard.assert_exercised("delete_turn")


def test_clear_session(pg: Pg) -> None:
    def body(session: Any) -> None:
        out = pg.guard.attempt(
            "clear_session", lambda: pg.l1.clear_session(session), pure=_nothing_deleted
        )
        if out.ok and any(out.value.values()):
            assert session in SEED_SESSIONS
            pg.restore_seeds()

    explore("pg.clear_session", maybe(session_ids), body)
    pg.guard.assert_exercised("clear_session")


def test_count(pg: Pg) -> None:
    args = st.tuples(st.sampled_from(TABLES), maybe(st.one_of(st.none(), session_ids)))

    def body(example: Any) -> None:
        table, session = example
        adapter = pg.l1 if table == "active_context" else pg.l2
        out = pg.guard.attempt("count", lambda: adapter.count(session), pure=True)
        if out.ok:
            expected = (
                len(pg.seeds[table])
                if session is None
                else sum(1 for row in pg.seeds[table] if row[1] == session)
            )
            assert out.value == expected

    explore("pg.count", args, body)
    pg.guard.assert_exercised("count")


def test_no_secret_in_logs(pg: Pg) -> None:
    """Every record the calls above logged, at DEBUG, is free of the stack's secrets."""
    watch = pg.session.watch
    assert watch.records > 0
    watch.assert_clean()
