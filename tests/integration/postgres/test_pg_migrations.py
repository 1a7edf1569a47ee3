"""The migrations against the real PostgreSQL, each test in a fresh database.

``0001_active_context`` creates the two tables and everything around them;
``0002_fact_idempotency`` adds ``working_memory.idempotency_key`` with its CHECK and partial
unique index; ``0004_fact_session_order`` adds the two indexes that read a session's facts in
the order ``get_facts`` and ``search`` ask for (their plans are checked here too). The schema
is read back from the catalogs (information_schema, pg_indexes, pg_proc, pg_views,
pg_constraint, pg_trigger, pg_description) rather than trusted from yoyo's bookkeeping.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors as pe
import pytest
from stack_tls import ca_file
from yoyo import get_backend, read_migrations
from yoyo.migrations import ancestors, descendants

from mas_storage_postgres import yoyo_database_url

ROOT = Path(__file__).resolve().parents[3]
MIGRATIONS = ROOT / "migrations"

# -- the catalog snapshot ------------------------------------------------------------------

SNAPSHOT_QUERIES = {
    "tables": """
        SELECT table_name, table_type FROM information_schema.tables
        WHERE table_schema = 'public' AND table_name NOT LIKE '%yoyo%' ORDER BY 1""",
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable, column_default,
               character_maximum_length
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name NOT LIKE '%yoyo%' ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
        FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text NOT LIKE '%yoyo%'
        ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename NOT LIKE '%yoyo%' ORDER BY 2""",
    "functions": """
        SELECT proname, pg_get_function_identity_arguments(oid), pg_get_function_result(oid),
               prosrc
        FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
        WHERE NOT tgisinternal ORDER BY 2""",
    "views": """
        SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1""",
    "sequences": """
        SELECT sequencename, data_type::text FROM pg_sequences
        WHERE schemaname = 'public' AND sequencename NOT LIKE '%yoyo%' ORDER BY 1""",
    "relation_comments": """
        SELECT c.relname, COALESCE(a.attname, ''), d.description
        FROM pg_description d
        JOIN pg_class c ON d.classoid = 'pg_class'::regclass AND d.objoid = c.oid
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid
        WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "function_comments": """
        SELECT p.proname, d.description FROM pg_description d
        JOIN pg_proc p ON d.classoid = 'pg_proc'::regclass AND d.objoid = p.oid
        WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1""",
}

FIRST = "0001_active_context"
SECOND = "0002_fact_idempotency"
THIRD = "0003_app_role_grants"  # grants only: no object of its own (its test: test_0003_*)
FOURTH = "0004_fact_session_order"
ALL = [FIRST, SECOND, THIRD, FOURTH]

TABLES = {"active_context", "working_memory"}
VIEWS = {"v_active_context_stats", "v_working_memory_stats"}
INDEXES = {
    "active_context_pkey",
    "unique_session_turn",
    "idx_active_context_session",
    "idx_active_context_session_turn",
    "idx_active_context_expires",
    "idx_active_context_created",
    "working_memory_pkey",
    "idx_working_memory_session",
    "idx_working_memory_session_type",
    "idx_working_memory_type",
    "idx_working_memory_confidence",
    "idx_working_memory_expires",
    "idx_working_memory_updated",
    "unique_session_idempotency_key",  # 0002
    "idx_working_memory_session_confidence",  # 0004
    "idx_working_memory_session_created",  # 0004
}
FUNCTIONS = {
    "update_updated_at_column",
    "cleanup_expired_active_context",
    "cleanup_expired_working_memory",
    "cleanup_expired_records",
}
CONSTRAINTS = {
    ("active_context", "active_context_pkey", "p"),
    ("active_context", "unique_session_turn", "u"),
    ("active_context", "valid_turn_id", "c"),
    ("active_context", "valid_ttl", "c"),
    ("working_memory", "working_memory_pkey", "p"),
    ("working_memory", "valid_confidence", "c"),
    ("working_memory", "valid_fact_type", "c"),
    ("working_memory", "valid_ttl_wm", "c"),
    ("working_memory", "valid_idempotency_key", "c"),  # 0002
}


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything of the public schema except yoyo's own tables."""
    with psycopg.connect(url) as conn:
        return {name: conn.execute(query).fetchall() for name, query in SNAPSHOT_QUERIES.items()}


def backend_for(url: str) -> Any:
    return get_backend(yoyo_database_url(url))


def migrations(only: str | None) -> Any:
    """Every migration, or ``only`` that one (``yoyo apply|rollback -r`` picks the same way)."""
    found = read_migrations(str(MIGRATIONS))
    return found if only is None else found.filter(lambda m: m.id == only)


def apply(url: str, only: str | None = None) -> list[str]:
    backend = backend_for(url)
    try:
        with backend.lock():
            todo = backend.to_apply(migrations(only))
            backend.apply_migrations(todo)
            return [m.id for m in todo]
    finally:
        backend.connection.close()


def rollback(url: str, only: str | None = None) -> list[str]:
    backend = backend_for(url)
    try:
        with backend.lock():
            todo = backend.to_rollback(migrations(only))
            backend.rollback_migrations(todo)
            return [m.id for m in todo]
    finally:
        backend.connection.close()


@pytest.fixture
def empty_schema(fresh_db: str) -> dict[str, list[tuple[Any, ...]]]:
    """The fresh database's snapshot before any migration (yoyo's tables excluded)."""
    return snapshot(fresh_db)


@pytest.fixture
def migrated(fresh_db: str) -> Iterator[psycopg.Connection[Any]]:
    """A fresh database with every migration applied, and an autocommit connection to it."""
    assert apply(fresh_db) == ALL
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        yield conn


# -- apply / rollback ----------------------------------------------------------------------


def test_apply_creates_exactly_the_expected_objects(
    fresh_db: str, empty_schema: dict[str, list[tuple[Any, ...]]]
) -> None:
    assert all(not rows for rows in empty_schema.values()), empty_schema
    assert apply(fresh_db) == ALL
    snap = snapshot(fresh_db)
    assert {(name, kind) for name, kind in snap["tables"]} == {
        *((t, "BASE TABLE") for t in TABLES),
        *((v, "VIEW") for v in VIEWS),
    }
    assert {row[1] for row in snap["indexes"]} == INDEXES
    assert {row[0] for row in snap["functions"]} == FUNCTIONS
    assert {(t, c, k) for t, c, k, _ in snap["constraints"]} == CONSTRAINTS
    assert [(t, n) for t, n, _ in snap["triggers"]] == [
        ("working_memory", "trigger_working_memory_updated_at")
    ]
    assert (
        "BEFORE UPDATE ON public.working_memory FOR EACH ROW EXECUTE FUNCTION"
        in (snap["triggers"][0][2])
    )
    assert {v for v, _ in snap["views"]} == VIEWS
    assert [s for s, _ in snap["sequences"]] == ["active_context_id_seq", "working_memory_id_seq"]


def test_columns_types_defaults_and_timestamptz(migrated: psycopg.Connection[Any]) -> None:
    rows = migrated.execute(SNAPSHOT_QUERIES["columns"]).fetchall()
    columns = {
        (t, c): (dtype, nullable, default, length)
        for t, c, dtype, nullable, default, length in rows
    }
    tables = {t for t, _ in columns}
    assert tables == TABLES | VIEWS
    base = {k: v for k, v in columns.items() if k[0] in TABLES}
    assert set(base) == {
        ("active_context", c)
        for c in (
            "id", "session_id", "turn_id", "content", "metadata", "created_at", "ttl_expires_at",
        )
    } | {
        ("working_memory", c)
        for c in (
            "id", "session_id", "fact_type", "content", "confidence", "source_turn_ids",
            "metadata", "created_at", "updated_at", "ttl_expires_at", "idempotency_key",
        )
    }  # fmt: skip
    for (table, column), (dtype, nullable, default, length) in base.items():
        if column.endswith("_at"):
            assert dtype == "timestamp with time zone", (table, column)
        if column in ("created_at", "updated_at"):
            assert (nullable, default) == ("NO", "now()"), (table, column)
        if column == "ttl_expires_at":
            assert (nullable, default) == ("YES", None)
        if column == "session_id":
            assert (dtype, length, nullable) == ("character varying", 255, "NO")
        if column == "metadata":
            assert (dtype, default) == ("jsonb", "'{}'::jsonb")
        if column == "id":
            assert dtype == "integer"
            assert default == f"nextval('{table}_id_seq'::regclass)"
    wm = {c: v for (t, c), v in base.items() if t == "working_memory"}
    assert wm["fact_type"][0:2] == ("character varying", "NO")
    assert wm["fact_type"][3] == 50
    assert wm["confidence"][0] == "double precision"
    assert wm["confidence"][2] == "1.0"
    assert (wm["source_turn_ids"][0], wm["source_turn_ids"][2]) == ("ARRAY", "'{}'::integer[]")
    assert wm["idempotency_key"] == ("text", "YES", None, None)  # 0002: nullable, no default


def test_partial_ttl_indexes_and_constraint_definitions(migrated: psycopg.Connection[Any]) -> None:
    indexes = dict(migrated.execute("SELECT indexname, indexdef FROM pg_indexes").fetchall())
    for name in ("idx_active_context_expires", "idx_working_memory_expires"):
        assert indexes[name].endswith("(ttl_expires_at) WHERE (ttl_expires_at IS NOT NULL)")
    assert indexes["idx_active_context_session_turn"].endswith("(session_id, turn_id DESC)")
    assert indexes["idx_working_memory_confidence"].endswith("(confidence DESC)")
    defs = {
        name: definition
        for _, name, _, definition in migrated.execute(SNAPSHOT_QUERIES["constraints"]).fetchall()
    }
    assert defs["unique_session_turn"] == "UNIQUE (session_id, turn_id)"
    assert defs["valid_turn_id"] == "CHECK ((turn_id >= 0))"
    assert defs["valid_ttl"] == (
        "CHECK (((ttl_expires_at IS NULL) OR (ttl_expires_at > created_at)))"
    )
    assert defs["valid_fact_type"] == "CHECK ((length((fact_type)::text) > 0))"
    # 0002: a partial unique index (no constraint), and a named length CHECK.
    assert indexes["unique_session_idempotency_key"] == (
        "CREATE UNIQUE INDEX unique_session_idempotency_key ON public.working_memory "
        "USING btree (session_id, idempotency_key) WHERE (idempotency_key IS NOT NULL)"
    )
    assert defs["valid_idempotency_key"] == (
        "CHECK (((idempotency_key IS NULL) OR ((length(idempotency_key) >= 1) AND "
        "(length(idempotency_key) <= 255))))"
    )


def test_every_table_column_function_and_view_is_commented(
    migrated: psycopg.Connection[Any],
) -> None:
    comments = {
        (rel, col): text
        for rel, col, text in migrated.execute(SNAPSHOT_QUERIES["relation_comments"]).fetchall()
    }
    columns = migrated.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name IN ('active_context', 'working_memory')"
    ).fetchall()
    for table, column in columns:
        assert comments.get((table, column)), f"{table}.{column} has no comment"
    for relation in TABLES | VIEWS:
        assert comments.get((relation, "")), f"{relation} has no comment"
    functions = dict(migrated.execute(SNAPSHOT_QUERIES["function_comments"]).fetchall())
    assert set(functions) == FUNCTIONS


def test_second_apply_is_a_no_op(fresh_db: str) -> None:
    assert apply(fresh_db) == ALL
    first = snapshot(fresh_db)
    assert apply(fresh_db) == []
    assert snapshot(fresh_db) == first
    with psycopg.connect(fresh_db) as conn:
        log = conn.execute(
            "SELECT migration_id, operation FROM _yoyo_log ORDER BY created_at_utc, id"
        ).fetchall()
    assert log == [(migration, "apply") for migration in ALL]


def test_rollback_removes_everything_and_reapply_gives_the_same_schema(
    fresh_db: str, empty_schema: dict[str, list[tuple[Any, ...]]]
) -> None:
    apply(fresh_db)
    first = snapshot(fresh_db)
    assert rollback(fresh_db) == [FOURTH, THIRD, SECOND, FIRST]  # newest first
    assert snapshot(fresh_db) == empty_schema
    with psycopg.connect(fresh_db) as conn:
        leftovers = conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relname NOT LIKE '%yoyo%' AND relname NOT LIKE '_yoyo%'"
        ).fetchall()
        types = conn.execute(
            "SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace "
            "AND typname NOT LIKE '%yoyo%'"
        ).fetchall()
    assert leftovers == []
    assert types == []
    apply(fresh_db)
    assert snapshot(fresh_db) == first


def test_rollback_refuses_to_cascade_into_foreign_objects(fresh_db: str) -> None:
    """An object 0001 did not create stops 0001's rollback; nothing of 0001 is dropped.

    Each migration rolls back in its own transaction, newest first: 0002 goes, then 0001
    fails as a whole, leaving exactly the schema of 0001 alone.
    """
    apply(fresh_db, FIRST)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE VIEW someone_elses AS SELECT id FROM active_context")
    only_first = snapshot(fresh_db)
    apply(fresh_db)
    with pytest.raises(psycopg.errors.DependentObjectsStillExist):
        rollback(fresh_db)
    assert snapshot(fresh_db) == only_first


def test_rollback_of_0002_refuses_to_cascade_into_a_view_on_the_key(fresh_db: str) -> None:
    apply(fresh_db)
    rollback(fresh_db, FOURTH)  # 0002's rollback takes 0004 and 0003 first, in their own
    rollback(fresh_db, THIRD)  # transactions
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE VIEW keyed AS SELECT id, idempotency_key FROM working_memory")
    before = snapshot(fresh_db)
    with pytest.raises(psycopg.errors.DependentObjectsStillExist):
        rollback(fresh_db, SECOND)
    assert snapshot(fresh_db) == before


def test_rollback_of_0002_alone_restores_exactly_the_0001_schema(fresh_db: str) -> None:
    assert apply(fresh_db, FIRST) == [FIRST]
    only_first = snapshot(fresh_db)
    assert apply(fresh_db, SECOND) == [SECOND]
    both = snapshot(fresh_db)
    assert both != only_first
    assert rollback(fresh_db, SECOND) == [SECOND]
    assert snapshot(fresh_db) == only_first
    assert apply(fresh_db, SECOND) == [SECOND]
    assert snapshot(fresh_db) == both


def test_rollback_of_0004_alone_restores_exactly_the_0002_schema(fresh_db: str) -> None:
    assert apply(fresh_db, FIRST) + apply(fresh_db, SECOND) == [FIRST, SECOND]
    before = snapshot(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        ids = [insert_fact(conn, content=f"kept {i}") for i in range(3)]
        assert apply(fresh_db, FOURTH) == [FOURTH]
        after = snapshot(fresh_db)
        added = {row[1] for row in after["indexes"]} - {row[1] for row in before["indexes"]}
        assert added == {
            "idx_working_memory_session_confidence",
            "idx_working_memory_session_created",
        }
        assert {k: v for k, v in after.items() if k != "indexes"} == {
            k: v for k, v in before.items() if k != "indexes"
        }
        assert rollback(fresh_db, FOURTH) == [FOURTH]
        assert snapshot(fresh_db) == before
        assert [r[0] for r in conn.execute("SELECT id FROM working_memory ORDER BY id")] == ids
    assert apply(fresh_db, FOURTH) == [FOURTH]
    assert snapshot(fresh_db) == after


def test_0002_on_a_table_with_facts_keeps_them_without_a_key(fresh_db: str) -> None:
    apply(fresh_db, FIRST)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        ids = [insert_fact(conn, content=f"old {i}") for i in range(3)]
        apply(fresh_db)
        stored = conn.execute(
            "SELECT id, content, idempotency_key FROM working_memory ORDER BY id"
        ).fetchall()
        assert stored == [(i, f"old {n}", None) for n, i in enumerate(ids)]
        insert_fact(conn, idempotency_key="k")
        rollback(fresh_db, SECOND)
        assert conn.execute("SELECT count(*) FROM working_memory").fetchone() == (4,)


def test_plain_yoyo_commands_from_the_root_use_the_settings(
    fresh_db: str, stack_outputs: dict[str, Any]
) -> None:
    """``yoyo list|apply|rollback`` with the repository's yoyo.ini and only POSTGRES_URL set
    (and POSTGRES_TLS_CA on a TLS stack: without MAS_STACK_OUTPUTS the settings would read the
    CA of the checkout's own ``.mas/stack-outputs.json``, another stack's under test-hosts)."""
    env = {k: v for k, v in os.environ.items() if k != "MAS_STACK_OUTPUTS"}
    env["POSTGRES_URL"] = fresh_db
    ca = ca_file(stack_outputs)
    if ca:
        env["POSTGRES_TLS_CA"] = ca

    def yoyo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "yoyo", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )

    listing = yoyo("list").stdout
    for migration in ALL:
        assert f"U         {migration}" in listing
    yoyo("apply")
    listing = yoyo("list").stdout
    for migration in ALL:
        assert f"A         {migration}" in listing
    assert {t for t, _ in snapshot(fresh_db)["tables"]} == TABLES | VIEWS
    first = yoyo("rollback")  # batch mode: the last migration only (0004)
    listing = yoyo("list").stdout
    assert f"A         {THIRD}" in listing
    assert f"U         {FOURTH}" in listing
    assert "idx_working_memory_session_created" not in str(snapshot(fresh_db)["indexes"])
    result = yoyo("rollback", "--all")
    assert all(not rows for rows in snapshot(fresh_db).values())
    password = psycopg.conninfo.conninfo_to_dict(fresh_db).get("password")
    if password:
        for run in (first, result):
            assert password not in run.stdout + run.stderr


# -- constraints ---------------------------------------------------------------------------

NOW = datetime.now(UTC)


def insert_turn(conn: psycopg.Connection[Any], **values: Any) -> None:
    row = {"session_id": "s", "turn_id": 1, "content": "x", **values}
    columns = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    conn.execute(f"INSERT INTO active_context ({columns}) VALUES ({marks})", list(row.values()))  # noqa: S608


def insert_fact(conn: psycopg.Connection[Any], **values: Any) -> int:
    row = {"session_id": "s", "fact_type": "preference", "content": "x", **values}
    columns = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    cur = conn.execute(
        f"INSERT INTO working_memory ({columns}) VALUES ({marks}) RETURNING id",  # noqa: S608
        list(row.values()),
    )
    return cur.fetchone()[0]


def test_duplicate_session_turn_is_a_unique_violation(migrated: psycopg.Connection[Any]) -> None:
    insert_turn(migrated)
    insert_turn(migrated, session_id="other")  # same turn number, other session: fine
    with pytest.raises(pe.UniqueViolation) as info:
        insert_turn(migrated)
    assert info.value.diag.constraint_name == "unique_session_turn"


def test_negative_turn_id_is_a_check_violation(migrated: psycopg.Connection[Any]) -> None:
    insert_turn(migrated, turn_id=0)
    with pytest.raises(pe.CheckViolation) as info:
        insert_turn(migrated, turn_id=-1)
    assert info.value.diag.constraint_name == "valid_turn_id"


@pytest.mark.parametrize("confidence", [-0.01, 1.01, 2])
def test_confidence_outside_zero_one_is_a_check_violation(
    migrated: psycopg.Connection[Any], confidence: float
) -> None:
    insert_fact(migrated, confidence=0.0)
    insert_fact(migrated, confidence=1.0)
    with pytest.raises(pe.CheckViolation) as info:
        insert_fact(migrated, confidence=confidence)
    assert info.value.diag.constraint_name == "valid_confidence"


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(seconds=-1)])
def test_ttl_not_after_created_at_is_a_check_violation(
    migrated: psycopg.Connection[Any], delta: timedelta
) -> None:
    with pytest.raises(pe.CheckViolation) as info:
        insert_turn(migrated, created_at=NOW, ttl_expires_at=NOW + delta)
    assert info.value.diag.constraint_name == "valid_ttl"
    with pytest.raises(pe.CheckViolation) as info:
        insert_fact(migrated, created_at=NOW, ttl_expires_at=NOW + delta)
    assert info.value.diag.constraint_name == "valid_ttl_wm"
    # The default created_at (now()) counts too: an already-past expiry is refused.
    with pytest.raises(pe.CheckViolation):
        insert_turn(migrated, ttl_expires_at=NOW - timedelta(hours=1))


def test_empty_fact_type_is_a_check_violation(migrated: psycopg.Connection[Any]) -> None:
    with pytest.raises(pe.CheckViolation) as info:
        insert_fact(migrated, fact_type="")
    assert info.value.diag.constraint_name == "valid_fact_type"


def test_too_long_values_are_refused(migrated: psycopg.Connection[Any]) -> None:
    with pytest.raises(pe.StringDataRightTruncation):
        insert_turn(migrated, session_id="s" * 256)
    with pytest.raises(pe.StringDataRightTruncation):
        insert_fact(migrated, fact_type="t" * 51)


def test_idempotency_key_is_unique_per_session_only(migrated: psycopg.Connection[Any]) -> None:
    insert_fact(migrated, idempotency_key="k-1")
    insert_fact(migrated, session_id="other", idempotency_key="k-1")  # other session: fine
    for _ in range(3):
        insert_fact(migrated)  # without a key: as many as wanted (NULLs are distinct)
    with pytest.raises(pe.UniqueViolation) as info:
        insert_fact(migrated, idempotency_key="k-1")
    assert info.value.diag.constraint_name == "unique_session_idempotency_key"
    # The adapter's statement: ON CONFLICT infers the partial index, a replay inserts nothing.
    statement = (
        "INSERT INTO working_memory (session_id, fact_type, content, idempotency_key) "
        "VALUES ('s', 't', 'x', %s) ON CONFLICT (session_id, idempotency_key) "
        "WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id"
    )
    assert migrated.execute(statement, ("k-1",)).fetchall() == []
    assert len(migrated.execute(statement, ("k-2",)).fetchall()) == 1
    assert len(migrated.execute(statement, (None,)).fetchall()) == 1
    assert remaining(migrated, "working_memory") == 7


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_idempotency_key_length_is_a_check_violation(
    migrated: psycopg.Connection[Any], key: str
) -> None:
    insert_fact(migrated, idempotency_key="é" * 255)  # characters, not bytes
    with pytest.raises(pe.CheckViolation) as info:
        insert_fact(migrated, idempotency_key=key)
    assert info.value.diag.constraint_name == "valid_idempotency_key"


def test_defaults_fill_a_minimal_row(migrated: psycopg.Connection[Any]) -> None:
    fact_id = insert_fact(migrated)
    confidence, sources, metadata, created, updated, ttl, key = migrated.execute(
        "SELECT confidence, source_turn_ids, metadata, created_at, updated_at, ttl_expires_at, "
        "idempotency_key FROM working_memory WHERE id = %s",
        (fact_id,),
    ).fetchone()
    assert (confidence, sources, metadata, ttl, key) == (1.0, [], {}, None, None)
    assert created == updated
    assert created.tzinfo is not None


# -- trigger, cleanup functions, views -----------------------------------------------------


def test_trigger_moves_updated_at_on_update(migrated: psycopg.Connection[Any]) -> None:
    old = NOW - timedelta(days=1)
    fact_id = insert_fact(migrated, created_at=old, updated_at=old)
    migrated.execute("UPDATE working_memory SET content = 'y' WHERE id = %s", (fact_id,))
    created, updated, now = migrated.execute(
        "SELECT created_at, updated_at, now() FROM working_memory WHERE id = %s", (fact_id,)
    ).fetchone()
    assert created == old
    assert old < updated <= now
    # Even an UPDATE that tries to set updated_at itself gets the trigger's value.
    migrated.execute("UPDATE working_memory SET updated_at = %s WHERE id = %s", (old, fact_id))
    (updated_again,) = migrated.execute(
        "SELECT updated_at FROM working_memory WHERE id = %s", (fact_id,)
    ).fetchone()
    assert updated_again > old


def seed_expiry_mix(conn: psycopg.Connection[Any]) -> None:
    """Turns: 2 expired, 2 live (one permanent). Facts: 3 expired, 2 live (one permanent)."""
    past = NOW - timedelta(days=2)
    for turn_id, ttl in enumerate([NOW - timedelta(hours=1), NOW - timedelta(seconds=1)]):
        insert_turn(conn, turn_id=turn_id, created_at=past, ttl_expires_at=ttl)
    insert_turn(conn, turn_id=10, ttl_expires_at=NOW + timedelta(hours=1))
    insert_turn(conn, turn_id=11, ttl_expires_at=None)
    for hours in (1, 2, 3):
        insert_fact(conn, created_at=past, ttl_expires_at=NOW - timedelta(hours=hours))
    insert_fact(conn, ttl_expires_at=NOW + timedelta(days=1), confidence=0.5)
    insert_fact(conn, ttl_expires_at=None)


def remaining(conn: psycopg.Connection[Any], table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608


def test_cleanup_functions_delete_only_expired_rows(migrated: psycopg.Connection[Any]) -> None:
    seed_expiry_mix(migrated)
    assert migrated.execute("SELECT cleanup_expired_active_context()").fetchone() == (2,)
    assert remaining(migrated, "active_context") == 2
    assert sorted(
        r[0] for r in migrated.execute("SELECT turn_id FROM active_context").fetchall()
    ) == [10, 11]
    assert migrated.execute("SELECT cleanup_expired_working_memory()").fetchone() == (3,)
    assert remaining(migrated, "working_memory") == 2
    assert migrated.execute("SELECT cleanup_expired_active_context()").fetchone() == (0,)


def test_cleanup_expired_records_counts_per_table_and_in_total(
    migrated: psycopg.Connection[Any],
) -> None:
    seed_expiry_mix(migrated)
    assert migrated.execute("SELECT * FROM cleanup_expired_records()").fetchall() == [(2, 3, 5)]
    assert (remaining(migrated, "active_context"), remaining(migrated, "working_memory")) == (2, 2)
    assert migrated.execute("SELECT * FROM cleanup_expired_records()").fetchall() == [(0, 0, 0)]


def test_views_count_active_and_expired_rows(migrated: psycopg.Connection[Any]) -> None:
    seed_expiry_mix(migrated)
    insert_turn(migrated, session_id="other", turn_id=1)
    ac = migrated.execute(
        "SELECT session_id, turn_count, expired_count, active_count, first_turn_at <= last_turn_at "
        "FROM v_active_context_stats ORDER BY session_id"
    ).fetchall()
    assert ac == [("other", 1, 0, 1, True), ("s", 4, 2, 2, True)]
    wm = migrated.execute(
        "SELECT session_id, fact_count, fact_type_count, avg_confidence, expired_count, "
        "active_count FROM v_working_memory_stats"
    ).fetchall()
    assert wm == [("s", 5, 1, pytest.approx(0.9), 3, 2)]


def test_0004_applies_and_rolls_back_with_or_without_a_0003(fresh_db: str, tmp_path: Path) -> None:
    """0003 is issue 18's number and lands separately: 0004 depends on 0002 only, so with a
    0003 beside it both apply (0003 first), and each rolls back leaving the other in place.
    (Without a 0003, the repository's own list: every other test here.)"""
    for source in MIGRATIONS.glob("*.sql"):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    (tmp_path / "0003_standin.sql").write_text(
        "-- depends: 0002_fact_idempotency\nCREATE TABLE standin_0003 (x int);\n",
        encoding="utf-8",
    )
    (tmp_path / "0003_standin.rollback.sql").write_text(
        "DROP TABLE standin_0003;\n", encoding="utf-8"
    )
    found = read_migrations(str(tmp_path))

    def run(action: str, only: str | None = None) -> list[str]:
        """As ``yoyo apply|rollback -r only``: a rollback takes what depends on ``only`` too."""
        chosen = found
        if only is not None:
            target = next(m for m in found if m.id == only)
            related = ancestors(target, found) if action == "apply" else descendants(target, found)
            chosen = found.filter(lambda m: m in related | {target})
        backend = backend_for(fresh_db)
        try:
            with backend.lock():
                todo = getattr(backend, f"to_{action}")(chosen)
                getattr(backend, f"{action}_migrations")(todo)
                return [m.id for m in todo]
        finally:
            backend.connection.close()

    def present() -> tuple[bool, bool]:
        """(0003's table exists, 0004's two indexes exist)."""
        snap = snapshot(fresh_db)
        indexes = {row[1] for row in snap["indexes"]}
        return (
            "standin_0003" in {row[0] for row in snap["tables"]},
            {"idx_working_memory_session_confidence", "idx_working_memory_session_created"}
            <= indexes,
        )

    applied = run("apply")
    assert applied[:2] == [FIRST, SECOND]
    assert applied.index("0003_standin") < applied.index(FOURTH)
    assert present() == (True, True)
    assert run("rollback", FOURTH) == [FOURTH]
    assert present() == (True, False)
    assert run("apply") == [FOURTH]
    assert run("rollback", "0003_standin") == ["0003_standin"]
    assert present() == (False, True)


# -- 0004: a session's facts in the order asked ----------------------------------------------


def test_0004_index_definitions(migrated: psycopg.Connection[Any]) -> None:
    indexes = dict(migrated.execute("SELECT indexname, indexdef FROM pg_indexes").fetchall())
    assert indexes["idx_working_memory_session_confidence"] == (
        "CREATE INDEX idx_working_memory_session_confidence ON public.working_memory "
        "USING btree (session_id, confidence DESC, updated_at DESC, id)"
    )
    assert indexes["idx_working_memory_session_created"] == (
        "CREATE INDEX idx_working_memory_session_created ON public.working_memory "
        "USING btree (session_id, created_at DESC, id DESC)"
    )


def _seed_a_big_session(conn: psycopg.Connection[Any]) -> None:
    """20,000 facts in session 'big', 20 in each of 500 others; statistics up to date."""
    conn.execute(
        "INSERT INTO working_memory (session_id, fact_type, content, confidence, created_at) "
        "SELECT CASE WHEN g <= 20000 THEN 'big' ELSE 'small-' || (g % 500) END, "
        "(ARRAY['goal', 'preference'])[1 + g % 2], 'fact ' || g, (g * 7919 % 1000) / 1000.0, "
        "now() - g * interval '1 second' FROM generate_series(1, 30000) g"
    )
    conn.execute("ANALYZE working_memory")


def _plan(conn: psycopg.Connection[Any], statement: Any, params: list[Any]) -> dict[str, Any]:
    """The executed plan (EXPLAIN ANALYZE, JSON) of one of the adapter's statements."""
    text = statement.as_string(conn)
    row = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {text}", params).fetchone()  # type: ignore[arg-type]
    return row[0][0]["Plan"]  # type: ignore[no-any-return,index]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


@pytest.mark.parametrize(
    ("call", "index", "limit"),
    [
        ("get_facts", "idx_working_memory_session_confidence", 100),
        ("get_facts_min_confidence", "idx_working_memory_session_confidence", 50),
        ("search", "idx_working_memory_session_created", 10),
    ],
)
def test_a_big_session_is_read_in_index_order_without_a_sort(
    migrated: psycopg.Connection[Any], call: str, index: str, limit: int
) -> None:
    """The adapter's own statements: an index scan on the session's ordered index reads only
    the rows returned (no Sort node, no pass over the session's 20,000 facts)."""
    from mas_storage_postgres import _sql

    _seed_a_big_session(migrated)
    if call == "search":
        statement, params = _sql.search("working_memory", {"session_id": "big", "limit": limit})
    else:
        floor = 0.5 if call == "get_facts_min_confidence" else None
        statement, params = _sql.facts("big", None, floor, limit, False)
    nodes = _nodes(_plan(migrated, statement, params))
    scans = [n for n in nodes if n.get("Index Name") == index]
    assert [n["Node Type"] for n in scans] == ["Index Scan"], nodes
    assert not [n for n in nodes if "Sort" in n["Node Type"]], nodes
    assert scans[0]["Actual Rows"] == limit


def test_without_0004_a_big_session_is_sorted_whole(fresh_db: str) -> None:
    """The same statement before the migration: every fact of the session is read and sorted
    (or the whole table walked in confidence order): what 0004 removes."""
    from mas_storage_postgres import _sql

    assert apply(fresh_db, FIRST) + apply(fresh_db, SECOND) == [FIRST, SECOND]
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        _seed_a_big_session(conn)
        statement, params = _sql.search("working_memory", {"session_id": "big", "limit": 10})
        nodes = _nodes(_plan(conn, statement, params))
    assert [n for n in nodes if "Sort" in n["Node Type"]], nodes
    read = max(
        n["Actual Rows"] * n.get("Actual Loops", 1) for n in nodes if "Scan" in n["Node Type"]
    )
    assert read >= 20_000


def test_0003_grants_the_dml_and_its_rollback_revokes_it(fresh_db: str) -> None:
    """0003 grants mas_memory_rw exactly the adapter's DML; its rollback takes all of it back."""
    query = (
        "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) "
        "FROM information_schema.role_table_grants WHERE grantee = 'mas_memory_rw' "
        "GROUP BY table_name ORDER BY table_name"
    )
    assert apply(fresh_db) == ALL
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute(query).fetchall() == [
            ("active_context", "DELETE,INSERT,SELECT,UPDATE"),
            ("v_active_context_stats", "SELECT"),
            ("v_working_memory_stats", "SELECT"),
            ("working_memory", "DELETE,INSERT,SELECT,UPDATE"),
        ]
    assert rollback(fresh_db, THIRD) == [THIRD]
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute(query).fetchall() == []
