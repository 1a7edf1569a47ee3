"""Every SQL statement of the adapter, composed from whitelisted names with :mod:`psycopg.sql`.

Table and column names only ever come from the constants below (never from a caller), and are
quoted with :class:`psycopg.sql.Identifier`; every value is a ``%s`` bind parameter. Builders
that take a caller's query validate it completely and return ``(statement, params)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, Final

from psycopg import sql

from mas_storage import StorageDataError

from ._config import ACTIVE_CONTEXT, SORT_COLUMNS, TABLES, WORKING_MEMORY
from ._records import COLUMNS, validate_session_id, validate_turn_id

__all__ = [
    "ACTIVE",
    "FACT_BATCH",
    "FACT_BATCH_CONFLICTS",
    "MAX_LIMIT",
    "RESERVE_IDS",
    "SAME_FACT",
    "SAME_TURN",
    "SELECT",
    "TURN_LOCK",
    "add_fact_keyed",
    "add_turn_auto",
    "add_turn_explicit",
    "cleanup",
    "copy_rows",
    "count",
    "create_fact_batch",
    "delete_by_id",
    "facts",
    "insert",
    "insert_fact_batch",
    "int_in",
    "min_confidence",
    "recent_turns",
    "search",
    "select_by_id",
    "table_stats",
    "update_fact",
]

#: Columns returned by reads, per table (explicit, so the result shape never drifts).
SELECT: Final = {table: ("id", *COLUMNS[table]) for table in TABLES}
#: A row is live while it has no expiry or its expiry is still ahead (expired: ttl <= now()).
ACTIVE: Final = sql.SQL("(ttl_expires_at IS NULL OR ttl_expires_at > now())")
MAX_LIMIT: Final = 10_000
_ORDERS: Final = {"asc": sql.SQL("ASC"), "desc": sql.SQL("DESC")}
_DEFAULT_SORT: Final = {ACTIVE_CONTEXT: "turn_id", WORKING_MEMORY: "created_at"}
_COMMON_KEYS: Final = frozenset(
    {"session_id", "limit", "offset", "sort", "order", "include_expired"}
)
_SEARCH_KEYS: Final = {
    ACTIVE_CONTEXT: _COMMON_KEYS | {"turn_id"},
    WORKING_MEMORY: _COMMON_KEYS | {"fact_type", "min_confidence"},
}


def _names(columns: tuple[str, ...]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def _where(conditions: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("TRUE")


def _render(statement: sql.Composable) -> sql.SQL:
    """``statement`` rendered to text once. psycopg re-renders a ``Composed`` on every execute
    (about 15 us for a SELECT, measured in ``tests/benchmarks/bench_postgres.py``); plain
    ``SQL`` costs nothing. Only whitelisted names are ever rendered (identifiers quoted)."""
    return sql.SQL(statement.as_string(None))


def int_in(value: Any, key: str, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]``, else :class:`StorageDataError` naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StorageDataError(f"'{key}' must be an integer between {low} and {high}")
    return value


def min_confidence(value: Any) -> float:
    """A confidence bound in [0, 1]."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or not 0.0 <= value <= 1.0
    ):
        raise StorageDataError("'min_confidence' must be a number between 0.0 and 1.0")
    return float(value)


def _flag(query: Mapping[str, Any], key: str) -> bool:
    value = query.get(key, False)
    if not isinstance(value, bool):
        raise StorageDataError(f"'{key}' must be true or false, got {type(value).__name__}")
    return value


def _fact_type(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise StorageDataError("'fact_type' must be a non-empty string")
    return value


@functools.cache
def insert(table: str) -> sql.SQL:
    """``INSERT`` of one row of ``table`` (values in :data:`COLUMNS` order), returning ``id``."""
    return _render(
        sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
            sql.Identifier(table),
            _names(COLUMNS[table]),
            sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS[table])),
        )
    )


@functools.cache
def copy_rows(table: str, into: str | None = None) -> sql.SQL:
    """Binary ``COPY`` of ``id`` plus :data:`COLUMNS` of ``table``, into ``table`` itself or
    into :data:`FACT_BATCH` (``into``)."""
    assert into in (None, FACT_BATCH), into
    return _render(
        sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(into or table), _names(("id", *COLUMNS[table]))
        )
    )


@functools.cache
def select_by_id(table: str, include_expired: bool) -> sql.SQL:
    """One row of ``table`` by ``id``."""
    conditions: list[sql.Composable] = [sql.SQL("id = %s")]
    if not include_expired:
        conditions.append(ACTIVE)
    return _render(
        sql.SQL("SELECT {} FROM {} WHERE {}").format(
            _names(SELECT[table]), sql.Identifier(table), _where(conditions)
        )
    )


@functools.cache
def delete_by_id(table: str) -> sql.SQL:
    """Delete one row of ``table`` by ``id``."""
    return _render(sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(table)))


def count(
    table: str, session_id: str | None, include_expired: bool
) -> tuple[sql.Composed, list[Any]]:
    """Row count of ``table``, of one session if given."""
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    if session_id is not None:
        conditions.append(sql.SQL("session_id = %s"))
        params.append(validate_session_id(session_id))
    if not include_expired:
        conditions.append(ACTIVE)
    statement = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
        sql.Identifier(table), _where(conditions)
    )
    return statement, params


def search(table: str, query: Any) -> tuple[sql.SQL, list[Any]]:
    """The generic ``search``: filters, whitelisted sort and order, pagination."""
    if not isinstance(query, Mapping):
        raise StorageDataError(f"A search query must be a dict, got {type(query).__name__}")
    unknown = set(query) - _SEARCH_KEYS[table]
    if unknown:
        raise StorageDataError(
            f"Unknown search keys for {table}: {', '.join(sorted(map(str, unknown)))}; "
            f"allowed: {', '.join(sorted(_SEARCH_KEYS[table]))}"
        )
    filters: list[str] = []
    params: list[Any] = []
    if "session_id" in query:
        filters.append("session_id")
        params.append(validate_session_id(query["session_id"]))
    if "turn_id" in query:
        filters.append("turn_id")
        params.append(validate_turn_id(query["turn_id"]))
    if "fact_type" in query:
        filters.append("fact_type")
        params.append(_fact_type(query["fact_type"]))
    if query.get("min_confidence") is not None:
        filters.append("min_confidence")
        params.append(min_confidence(query["min_confidence"]))
    include_expired = _flag(query, "include_expired")
    sort = query.get("sort", _DEFAULT_SORT[table])
    if not isinstance(sort, str) or sort not in SORT_COLUMNS[table]:
        raise StorageDataError(
            f"Cannot sort {table} by {sort!r}; allowed: {', '.join(SORT_COLUMNS[table])}"
        )
    order = query.get("order", "desc")
    order = order.lower() if isinstance(order, str) else None
    if order not in _ORDERS:
        raise StorageDataError(f"'order' must be 'asc' or 'desc', got {query.get('order')!r}")
    limit = int_in(query.get("limit", 10), "limit", 1, MAX_LIMIT)
    offset = int_in(query.get("offset", 0), "offset", 0, 2**62)
    statement = _search_statement(table, tuple(filters), include_expired, sort, order)
    return statement, [*params, limit, offset]


#: The condition each search filter adds (its value is the next bind parameter).
_FILTERS: Final = {
    "session_id": sql.SQL("session_id = %s"),
    "turn_id": sql.SQL("turn_id = %s"),
    "fact_type": sql.SQL("fact_type = %s"),
    "min_confidence": sql.SQL("confidence >= %s"),
}


@functools.cache
def _search_statement(
    table: str, filters: tuple[str, ...], include_expired: bool, sort: str, order: str
) -> sql.SQL:
    """The search statement of one query shape (all arguments are validated names)."""
    conditions: list[sql.Composable] = [_FILTERS[name] for name in filters]
    if not include_expired:
        conditions.append(ACTIVE)
    direction = _ORDERS[order]
    return _render(
        sql.SQL(
            "SELECT {cols} FROM {table} WHERE {where} ORDER BY {sort} {dir}, id {dir} "
            "LIMIT %s OFFSET %s"
        ).format(
            cols=_names(SELECT[table]),
            table=sql.Identifier(table),
            where=_where(conditions),
            sort=sql.Identifier(sort),
            dir=direction,
        )
    )


@functools.cache
def add_turn_explicit() -> sql.Composed:
    """Insert a turn under the caller's number; no row back when that number is taken."""
    return sql.SQL(
        "INSERT INTO active_context ({}) VALUES ({}) "
        "ON CONFLICT ON CONSTRAINT unique_session_turn DO NOTHING RETURNING turn_id"
    ).format(
        _names(COLUMNS[ACTIVE_CONTEXT]),
        sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS[ACTIVE_CONTEXT])),
    )


# -- idempotent facts (migration 0002) ------------------------------------------------------

#: Infers the partial unique index ``unique_session_idempotency_key``: a fact whose key its
#: session already holds is skipped (no row back); facts without a key never conflict.
_ON_KEY_CONFLICT: Final = sql.SQL(
    "ON CONFLICT (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)
#: The fields a replay must repeat for the stored fact to count as the same one. The times are
#: left out: a retry computes its own created_at and expiry.
_FACT_FIELDS: Final = ("fact_type", "content", "confidence", "source_turn_ids", "metadata")
#: The temporary table a keyed ``store_many`` copies into (dropped at commit or rollback).
FACT_BATCH: Final = "mas_fact_batch"


@functools.cache
def add_fact_keyed() -> sql.SQL:
    """Insert a fact with a key (values in :data:`COLUMNS` order); no row back when the
    session already holds the key."""
    return _render(
        sql.SQL("INSERT INTO working_memory ({}) VALUES ({}) {} RETURNING id").format(
            _names(COLUMNS[WORKING_MEMORY]),
            sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS[WORKING_MEMORY])),
            _ON_KEY_CONFLICT,
        )
    )


#: The fact holding a session's key, and whether its fields equal the replay's (params: the
#: five :data:`_FACT_FIELDS` values, session_id, idempotency_key).
SAME_FACT: Final = sql.SQL(
    "SELECT id, (fact_type, content, confidence, source_turn_ids, metadata) "
    "IS NOT DISTINCT FROM (%s, %s, %s, %s::int4[], %s) "
    "FROM working_memory WHERE session_id = %s AND idempotency_key = %s"
)


@functools.cache
def create_fact_batch() -> sql.SQL:
    """The keyed batch's temporary table: the columns of ``working_memory`` with their exact
    types, no rows, no constraints; it lives until the transaction ends."""
    return _render(
        sql.SQL(
            "CREATE TEMPORARY TABLE {batch} ON COMMIT DROP AS "
            "SELECT {cols} FROM working_memory WITH NO DATA"
        ).format(batch=sql.Identifier(FACT_BATCH), cols=_names(SELECT[WORKING_MEMORY]))
    )


@functools.cache
def insert_fact_batch() -> sql.SQL:
    """Move the batch into ``working_memory``; returns the ids of the rows inserted (the
    others hold a key their session already has).

    Rows go in key order, so two batches sharing keys wait for each other's keys in the same
    order (one waits, neither deadlocks); key-less rows (NULLs sort last) then in id order.
    """
    cols = _names(SELECT[WORKING_MEMORY])
    return _render(
        sql.SQL(
            "INSERT INTO working_memory ({}) SELECT {} FROM {} "
            "ORDER BY session_id, idempotency_key, id {} RETURNING id"
        ).format(cols, cols, sql.Identifier(FACT_BATCH), _ON_KEY_CONFLICT)
    )


#: For each batch row not inserted: its reserved id, the id of the fact holding its key
#: (``NULL`` if that fact is gone already) and whether the fields are the same.
FACT_BATCH_CONFLICTS: Final = _render(
    sql.SQL(
        "SELECT b.id, w.id, ({w}) IS NOT DISTINCT FROM ({b}) FROM {batch} b "
        "LEFT JOIN working_memory w "
        "ON w.session_id = b.session_id AND w.idempotency_key = b.idempotency_key "
        "WHERE b.idempotency_key IS NOT NULL AND w.id IS DISTINCT FROM b.id"
    ).format(
        w=sql.SQL(", ").join(sql.Identifier("w", c) for c in _FACT_FIELDS),
        b=sql.SQL(", ").join(sql.Identifier("b", c) for c in _FACT_FIELDS),
        batch=sql.Identifier(FACT_BATCH),
    )
)


#: Same content and metadata as a turn already stored? (an idempotent replay of add_turn)
SAME_TURN: Final = sql.SQL(
    "SELECT content = %s AND metadata = %s FROM active_context "
    "WHERE session_id = %s AND turn_id = %s"
)
#: ``n`` ids drawn from a table's ``id`` sequence, as one array (params: table, n). The
#: sequence is looked up once (MATERIALIZED): per row it would cost more than the insert.
RESERVE_IDS: Final = sql.SQL(
    "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, 'id')::regclass AS seq) "
    "SELECT array_agg(nextval(s.seq)) FROM s, generate_series(1, %s)"
)
#: Serialises turn numbering per session for the rest of the transaction.
TURN_LOCK: Final = sql.SQL("SELECT pg_advisory_xact_lock(%s, hashtext(%s))")


@functools.cache
def add_turn_auto() -> sql.Composed:
    """Insert a turn numbered max + 1 of its session (run under :data:`TURN_LOCK`).

    Params: session_id, content, metadata, created_at, ttl_expires_at, session_id.
    """
    return sql.SQL(
        "INSERT INTO active_context ({}) SELECT %s, COALESCE(max(turn_id), 0) + 1, %s, %s, "
        "%s, %s FROM active_context WHERE session_id = %s RETURNING turn_id"
    ).format(_names(COLUMNS[ACTIVE_CONTEXT]))


@functools.cache
def recent_turns(include_expired: bool) -> sql.Composed:
    """The newest turns of a session (params: session_id, limit)."""
    conditions: list[sql.Composable] = [sql.SQL("session_id = %s")]
    if not include_expired:
        conditions.append(ACTIVE)
    return sql.SQL("SELECT {} FROM active_context WHERE {} ORDER BY turn_id DESC LIMIT %s").format(
        _names(SELECT[ACTIVE_CONTEXT]), _where(conditions)
    )


def facts(
    session_id: str,
    fact_type: str | None,
    confidence: float | None,
    limit: int,
    include_expired: bool,
) -> tuple[sql.Composed, list[Any]]:
    """A session's facts, most confident first."""
    conditions: list[sql.Composable] = [sql.SQL("session_id = %s")]
    params: list[Any] = [validate_session_id(session_id)]
    if fact_type is not None:
        conditions.append(sql.SQL("fact_type = %s"))
        params.append(_fact_type(fact_type))
    if confidence is not None:
        conditions.append(sql.SQL("confidence >= %s"))
        params.append(min_confidence(confidence))
    if not include_expired:
        conditions.append(ACTIVE)
    params.append(int_in(limit, "limit", 1, MAX_LIMIT))
    statement = sql.SQL(
        "SELECT {} FROM working_memory WHERE {} "
        "ORDER BY confidence DESC, updated_at DESC, id LIMIT %s"
    ).format(_names(SELECT[WORKING_MEMORY]), _where(conditions))
    return statement, params


def update_fact(columns: tuple[str, ...]) -> sql.Composed:
    """``UPDATE working_memory SET <columns> WHERE id``; ``columns`` are checked names."""
    allowed = set(COLUMNS[WORKING_MEMORY])
    assert set(columns) <= allowed, columns
    return sql.SQL("UPDATE working_memory SET {} WHERE id = %s").format(
        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns)
    )


@functools.cache
def cleanup(table: str) -> sql.Composed:
    """Call the migration's cleanup function of ``table`` (returns the deleted count)."""
    return sql.SQL("SELECT {}()").format(sql.Identifier(f"cleanup_expired_{table}"))


@functools.cache
def table_stats(table: str) -> sql.Composed:
    """Live and expired rows of ``table``, and the server version."""
    return sql.SQL(
        "SELECT count(*) FILTER (WHERE {live}), count(*) FILTER (WHERE NOT {live}), "
        "current_setting('server_version') FROM {table}"
    ).format(live=ACTIVE, table=sql.Identifier(table))
