"""How the PostgresAdapter's paths cost as ``active_context`` and ``working_memory`` grow.

Runs in a scratch database (``bench_scale_<hex>``, the migrations applied by yoyo, dropped at
the end; the role needs CREATEDB, as the local stack's has), so the tables hold exactly the
rows of each size and the study can roll a migration back and forward to show a plan before
and after it. At each size N both tables hold N rows: 90 % in sessions of 100, 10 % in one
"hot" session (N/10 rows), so a path that reads a session shows whether it depends on the
session's size or only on what it returns.

Paths (the adapter's calls, one at a time):

* writes: ``store`` (a turn), ``add_turn`` (auto-numbered, into the hot session),
  ``add_fact``, ``store_many`` and ``store_many_facts`` (1,000 rows per call; items/s is
  rows/s);
* reads: ``retrieve`` (a random id), ``search`` (the 10 newest turns of a session of 100),
  ``search_hot`` (the same in the hot session), ``get_facts`` (a session's facts, most
  confident first, ``limit`` 100) and ``get_facts_hot``, ``search_facts_hot`` (the hot
  session's 10 newest facts, the generic search's default order);
* ``cleanup_expired`` with 100 expired turns and 100 expired facts among the N live rows
  (inserted, untimed, before each call).

At every size, the server's own execution time of each path's statement (EXPLAIN ANALYZE,
rolled back) as ``server_ms``. At the largest size: ``EXPLAIN (ANALYZE, BUFFERS)`` of each
statement, exactly as the adapter sends it, and of the cleanup's DELETEs. For every migration
listed in :data:`BEFORE_AFTER`, at every size, its paths are measured again with it rolled
back (as "<path> (before NNNN)") and, at the largest size, their plans taken: the before and
after of a fix, on the same data. Applying it again is timed (its index builds).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import scalekit as sk
from psycopg import sql
from psycopg.types.json import Jsonb
from yoyo import get_backend, read_migrations

from mas_storage_postgres import PostgresAdapter, yoyo_database_url
from mas_storage_postgres import _sql as adapter_sql

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "migrations"
SESSION = 100
HOT = "hot"
BATCH = 1_000
LOAD_CHUNK = 20_000
#: Migrations whose effect the study shows (rolled back, then applied again, at every size),
#: with the paths it should change: they are measured again without it, as "<path> (before
#: <migration>)", and their statements EXPLAINed without it at the largest size.
BEFORE_AFTER: dict[str, tuple[str, ...]] = {
    "0004_fact_session_order": (
        "add_fact",
        "store_many_facts",
        "get_facts",
        "get_facts_hot",
        "search_facts_hot",
    ),
}


NOTES = [
    "`search`, `get_facts`: a session of 100 rows; `*_hot`: the session of N/10 rows. "
    "`cleanup_expired`: 100 expired turns and 100 expired facts among N live rows; items/s "
    "counts the rows it deleted.",
    "**What grew, and the fix (migration 0004).** Without 0004 (the rows `(before 0004)`, "
    "measured with it rolled back in the run's scratch database), `search_facts_hot` (the "
    "generic search's default order for facts, created_at DESC, id DESC) read every fact of "
    "the session through idx_working_memory_session and sorted them: its plan below is a "
    "bitmap scan of all N/10 rows and a top-N sort, and its server time grows with the "
    "session. `get_facts_hot` either sorted the whole session or, as here, walked "
    "idx_working_memory_confidence across the whole table filtering on the session (rows "
    "removed by the filter grow as the session gets rarer). 0004 adds (session_id, "
    "confidence DESC, updated_at DESC, id) and (session_id, created_at DESC, id DESC): both "
    "plans become an Index Scan that reads only the rows returned, with no Sort (compare the "
    "buffers). The write paths with and without 0004 show what the two extra indexes cost "
    "each insert.",
    "**Flat by construction** (the plans below): `retrieve` (primary key), `search` and "
    "`search_hot` (unique_session_turn read backwards, an incremental sort of one group), "
    "`add_turn` (max(turn_id) is the first entry of idx_active_context_session_turn), "
    "`cleanup_expired` (the partial TTL indexes idx_*_expires: it visits the expired rows "
    "only). `get_facts` of a 100-fact session sorts its 100 rows: constant. Client-side "
    "figures at 10^6 include cold pages and the machine's load; the server's own time "
    "(`server_ms`, EXPLAIN ANALYZE) is the steadier slope.",
]


def _scratch_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _migrate(url: str, *, rollback: str | None = None) -> None:
    """Apply every migration (or roll ``rollback`` and its dependants back)."""
    backend = get_backend(yoyo_database_url(url))
    try:
        migrations = read_migrations(str(MIGRATIONS))
        with backend.lock():
            if rollback is None:
                backend.apply_migrations(backend.to_apply(migrations))
            else:
                chosen = migrations.filter(lambda m: m.id == rollback)
                backend.rollback_migrations(backend.to_rollback(chosen))
    finally:
        backend.connection.close()


class _Data:
    """The two tables grown size by size, with the sessions laid out as the docstring says."""

    def __init__(self, turns: PostgresAdapter, facts: PostgresAdapter) -> None:
        self.turns, self.facts = turns, facts
        self.regular = 0  # rows of each table in the sessions of 100
        self.hot = 0  # rows of each table in the hot session
        self.turn_ids: list[str] = []  # every loaded turn's id
        self.builds: list[tuple[str, int, float]] = []  # (migration, size, seconds to apply)

    def _rows(self, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        hot_share = n // 10
        turns, facts = [], []
        for j in range(self.regular, self.regular + n - hot_share):
            sid = f"s{j // SESSION}"
            turns.append(_turn(sid, j % SESSION + 1, j))
            facts.append(_fact(sid, j))
        for k in range(self.hot + 1, self.hot + hot_share + 1):
            turns.append(_turn(HOT, k, k))
            facts.append(_fact(HOT, k))
        self.regular += n - hot_share
        self.hot += hot_share
        return turns, facts

    async def grow(self, n: int) -> None:
        turns, facts = self._rows(n)
        for at in range(0, n, LOAD_CHUNK):
            self.turn_ids += await self.turns.store_many(turns[at : at + LOAD_CHUNK])
            await self.facts.store_many(facts[at : at + LOAD_CHUNK])

    def session(self, i: int) -> str:
        return f"s{random.Random(i).randrange(max(1, self.regular // SESSION))}"


def _turn(sid: str, turn_id: int, j: int) -> dict[str, Any]:
    return {
        "session_id": sid,
        "turn_id": turn_id,
        "content": f"Turn {j}: what is the capital of France, and how far is it?",
        "metadata": {"role": "user" if j % 2 else "assistant"},
    }


_TYPES = ("entity", "preference", "goal", "constraint")


def _fact(sid: str, j: int) -> dict[str, Any]:
    return {
        "session_id": sid,
        "fact_type": _TYPES[j % 4],
        "content": f"Fact {j}: the user prefers tea in the morning",
        "confidence": (j * 7919 % 1000) / 1000,
        "metadata": {"source": "bench"},
    }


async def run(outputs: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Grow both tables size by size and measure every path (see the module docstring)."""
    series = sk.series_for("postgres", quick)
    sizes = series.sizes
    calls, warmup = (10, 2) if quick else (200, 20)
    base_url = outputs["postgres_url"]
    name = f"bench_scale_{uuid.uuid4().hex[:12]}"
    url = _scratch_url(base_url, name)
    admin = await psycopg.AsyncConnection.connect(base_url, autocommit=True)
    await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        await asyncio.to_thread(_migrate, url)
        version = await _study(url, series, sizes, calls, warmup)
    finally:
        await admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        await admin.close()
    return sk.scaling_result(
        series,
        version=version,
        shape=(
            "both tables hold N rows each: 90 % in sessions of 100 rows, 10 % in one hot "
            "session of N/10 rows; a scratch database per run"
        ),
        facts={"database": name},
        notes=NOTES,
    )


async def _study(url: str, series: sk.Series, sizes: list[int], calls: int, warmup: int) -> str:
    turns = PostgresAdapter({"url": url, "table": "active_context", "pool_size": 2})
    facts = PostgresAdapter({"url": url, "table": "working_memory", "pool_size": 2})
    raw = await psycopg.AsyncConnection.connect(url, autocommit=True)
    await turns.connect()
    await facts.connect()
    data = _Data(turns, facts)
    try:
        loaded = 0
        for size in sizes:
            await series.grow(size, 2 * (size - loaded), data.grow(size - loaded))
            loaded = size
            await raw.execute("VACUUM ANALYZE active_context")
            await raw.execute("VACUUM ANALYZE working_memory")
            series.at(size)
            await _paths(series, size, data, raw, calls, warmup)
            await _server_times(series, size, data, raw)
            for migration, paths in BEFORE_AFTER.items():
                await _without(migration, paths, series, size, data, raw, url, calls, warmup)
            if size == sizes[-1]:
                await _evidence(series, size, data, raw, url)
        cur = await raw.execute("SELECT current_setting('server_version')")
        row = await cur.fetchone()
        return str(row[0]) if row else "?"
    finally:
        await turns.disconnect()
        await facts.disconnect()
        await raw.close()


async def _paths(
    series: sk.Series,
    size: int,
    data: _Data,
    raw: psycopg.AsyncConnection[Any],
    calls: int,
    warmup: int,
    only: tuple[str, ...] | None = None,
    suffix: str = "",
) -> None:
    """Measure the paths (``only`` those, if given; their names get ``suffix``)."""
    turns, facts = data.turns, data.facts

    async def undo_writes(_: int) -> None:
        await raw.execute("DELETE FROM active_context WHERE session_id LIKE 'w-%'")
        await raw.execute("DELETE FROM working_memory WHERE session_id LIKE 'w-%'")

    async def undo_hot(_: int) -> None:
        await raw.execute(
            "DELETE FROM active_context WHERE session_id = %s AND turn_id > %s", (HOT, data.hot)
        )

    async def store(i: int) -> int:
        await turns.store(_turn(f"w-{i // SESSION}", i % SESSION + 1, i))
        return 1

    async def add_turn(i: int) -> int:
        await turns.add_turn(HOT, f"turn {i}", {"role": "user"})
        return 1

    async def add_fact(i: int) -> int:
        await facts.add_fact(f"w-{i // SESSION}", "preference", f"fact {i}", 0.5)
        return 1

    async def store_many(i: int) -> int:
        sid = f"w-many-{i}"
        return len(await turns.store_many([_turn(sid, k + 1, k) for k in range(BATCH)]))

    async def store_many_facts(i: int) -> int:
        sid = f"w-many-{i}"
        return len(await facts.store_many([_fact(sid, k) for k in range(BATCH)]))

    ids = data.turn_ids

    async def retrieve(i: int) -> int:
        found = await turns.retrieve(ids[random.Random(i).randrange(len(ids))])
        return 1 if found else 0

    async def search(i: int) -> int:
        return len(await turns.search({"session_id": data.session(i), "limit": 10}))

    async def search_hot(i: int) -> int:
        return len(await turns.search({"session_id": HOT, "limit": 10}))

    async def get_facts(i: int) -> int:
        return len(await facts.get_facts(data.session(i)))

    async def get_facts_hot(i: int) -> int:
        return len(await facts.get_facts(HOT))

    async def search_facts_hot(i: int) -> int:
        return len(await facts.search({"session_id": HOT, "limit": 10}))

    async def expire_some(i: int) -> None:
        await _insert_expired(raw, f"x-{i}", 100)

    async def cleanup(i: int) -> int:
        return (await turns.cleanup_expired())["total"]

    few = max(5, calls // 4)
    plan: list[tuple[str, str, str, str, sk.Call, dict[str, Any]]] = [
        ("store", "write", "turns", "store one turn", store, {"undo": undo_writes}),
        (
            "add_turn",
            "write",
            "turns",
            "add_turn, auto-numbered, hot session",
            add_turn,
            {"undo": undo_hot},
        ),
        ("add_fact", "write", "facts", "add_fact", add_fact, {"undo": undo_writes}),
        (
            "store_many",
            "write",
            "turns",
            f"store_many of {BATCH:,} turns",
            store_many,
            {"undo": undo_writes, "calls": few, "warmup": 1},
        ),
        (
            "store_many_facts",
            "write",
            "facts",
            f"store_many of {BATCH:,} facts",
            store_many_facts,
            {"undo": undo_writes, "calls": few, "warmup": 1},
        ),
        ("retrieve", "read", "turns", "retrieve a random id", retrieve, {}),
        ("search", "read", "turns", "10 newest turns of a 100-turn session", search, {}),
        ("search_hot", "read", "turns", "10 newest turns of the N/10-turn session", search_hot, {}),
        (
            "get_facts",
            "read",
            "facts",
            "get_facts of a 100-fact session (limit 100)",
            get_facts,
            {},
        ),
        (
            "get_facts_hot",
            "read",
            "facts",
            "get_facts of the N/10-fact session (limit 100)",
            get_facts_hot,
            {},
        ),
        (
            "search_facts_hot",
            "read",
            "facts",
            "search: 10 newest facts of the N/10 session",
            search_facts_hot,
            {},
        ),
        (
            "cleanup_expired",
            "write",
            "rows deleted",
            "cleanup_expired: 100 expired turns + 100 facts among N",
            cleanup,
            {"before": expire_some, "calls": few, "warmup": 1},
        ),
    ]
    for name, kind, unit, what, call, options in plan:
        if only is not None and name not in only:
            continue
        await series.measure(
            size,
            name + suffix,
            (kind, unit, what + suffix),
            call,
            calls=options.get("calls", calls),
            warmup=options.get("warmup", warmup),
            before=options.get("before"),
            undo=options.get("undo"),
        )


async def _without(
    migration: str,
    paths: tuple[str, ...],
    series: sk.Series,
    size: int,
    data: _Data,
    raw: psycopg.AsyncConnection[Any],
    url: str,
    calls: int,
    warmup: int,
) -> None:
    """Measure ``paths`` with ``migration`` rolled back, then apply it again (timed)."""
    await asyncio.to_thread(_migrate, url, rollback=migration)
    try:
        await raw.execute("ANALYZE working_memory")
        suffix = f" (before {migration[:4]})"
        await _paths(series, size, data, raw, calls, warmup, only=paths, suffix=suffix)
        await _server_times(series, size, data, raw, only=paths, suffix=suffix)
    finally:
        begin = perf_counter()
        await asyncio.to_thread(_migrate, url)
        took = perf_counter() - begin
        await raw.execute("ANALYZE working_memory")
    data.builds.append((migration, size, took))


async def _insert_expired(raw: psycopg.AsyncConnection[Any], sid: str, n: int) -> None:
    """``n`` turns and ``n`` facts of session ``sid`` that expired a minute ago."""
    born = datetime.now(UTC) - timedelta(hours=2)
    gone = datetime.now(UTC) - timedelta(minutes=1)
    await raw.execute(
        "INSERT INTO active_context (session_id, turn_id, content, created_at, ttl_expires_at) "
        "SELECT %s, g, 'expired', %s, %s FROM generate_series(1, %s) g",
        (sid, born, gone, n),
    )
    await raw.execute(
        "INSERT INTO working_memory (session_id, fact_type, content, created_at, "
        "ttl_expires_at) SELECT %s, 'goal', 'expired', %s, %s FROM generate_series(1, %s) g",
        (sid, born, gone, n),
    )


#: name -> (title, builder of (statement, params) from the data); each is EXPLAINed.
def _statements(data: _Data) -> dict[str, tuple[str, Callable[[], tuple[Any, list[Any]]]]]:
    """Each path's statement as the adapter sends it, by path name: (title, builder)."""
    regular = data.session(0)
    now = datetime.now(UTC)
    fact = [HOT, "goal", "a fact", 0.5, [], Jsonb({}), now, now, now + timedelta(days=7), None]
    turn = ["w-plan", 1, "a turn", Jsonb({}), now, now + timedelta(days=1)]
    return {
        "store": (
            "store: INSERT of one turn",
            lambda: (adapter_sql.insert("active_context"), turn),
        ),
        "add_fact": (
            "add_fact: INSERT of one fact",
            lambda: (adapter_sql.insert("working_memory"), fact),
        ),
        "retrieve": (
            "retrieve by id",
            lambda: (
                adapter_sql.select_by_id("active_context", False),
                [int(data.turn_ids[len(data.turn_ids) // 2])],
            ),
        ),
        "search": (
            "search: the 10 newest turns of a 100-turn session",
            lambda: adapter_sql.search("active_context", {"session_id": regular, "limit": 10}),
        ),
        "search_hot": (
            "search: the 10 newest turns of the hot session",
            lambda: adapter_sql.search("active_context", {"session_id": HOT, "limit": 10}),
        ),
        "get_facts": (
            "get_facts of a 100-fact session",
            lambda: adapter_sql.facts(regular, None, None, 100, False),
        ),
        "get_facts_hot": (
            "get_facts of the hot session",
            lambda: adapter_sql.facts(HOT, None, None, 100, False),
        ),
        "search_facts_hot": (
            "search: the 10 newest facts of the hot session",
            lambda: adapter_sql.search("working_memory", {"session_id": HOT, "limit": 10}),
        ),
    }


async def _server_times(
    series: sk.Series,
    size: int,
    data: _Data,
    raw: psycopg.AsyncConnection[Any],
    only: tuple[str, ...] | None = None,
    suffix: str = "",
) -> None:
    """The server's own execution time of each path's statement (median of 3 EXPLAIN
    ANALYZE, rolled back), as ``server_ms`` of the path's point at ``size``: a figure the
    client's load does not blur."""
    for name, (_, build) in _statements(data).items():
        if only is not None and name not in only:
            continue
        curve = series.paths.get(name + suffix)
        if curve is None or not curve.points or curve.points[-1]["size"] != size:
            continue
        times = []
        for _ in range(3):
            statement, params = build()
            times.append(_execution_ms(await _explain(raw, statement, params)))
        curve.points[-1]["server_ms"] = statistics.median(times)
    cleanup = series.paths.get("cleanup_expired" + suffix)
    if (only is None or "cleanup_expired" in only) and cleanup and cleanup.points:
        await _insert_expired(raw, "x-server", 100)
        times = [
            _execution_ms(await _explain(raw, "SELECT * FROM cleanup_expired_records()", []))
            for _ in range(3)
        ]
        cleanup.points[-1]["server_ms"] = statistics.median(times)
        await raw.execute("DELETE FROM active_context WHERE session_id = 'x-server'")
        await raw.execute("DELETE FROM working_memory WHERE session_id = 'x-server'")


def _execution_ms(plan: str) -> float:
    """The ``Execution Time`` of an EXPLAIN ANALYZE text, in ms."""
    for line in reversed(plan.splitlines()):
        if line.startswith("Execution Time:"):
            return float(line.split(":", 1)[1].split()[0])
    raise ValueError("no Execution Time in the plan")


_CLEANUP = {
    "cleanup_expired (active_context)": "DELETE FROM active_context "
    "WHERE ttl_expires_at IS NOT NULL AND ttl_expires_at <= NOW()",
    "cleanup_expired (working_memory)": "DELETE FROM working_memory "
    "WHERE ttl_expires_at IS NOT NULL AND ttl_expires_at <= NOW()",
}


async def _explain(raw: psycopg.AsyncConnection[Any], statement: Any, params: list[Any]) -> str:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of a statement, run in a transaction rolled back."""
    text = statement.as_string(raw) if hasattr(statement, "as_string") else statement
    async with raw.transaction(force_rollback=True):
        cur = await raw.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") + sql.SQL(text), params)
        rows = await cur.fetchall()
    return "\n".join(str(r[0]) for r in rows)


async def _evidence(
    series: sk.Series, size: int, data: _Data, raw: psycopg.AsyncConnection[Any], url: str
) -> None:
    """Plans at the largest size; before/after for each migration of BEFORE_AFTER."""
    statements = _statements(data)
    await _insert_expired(raw, "x-plan", 100)
    for title, statement in _CLEANUP.items():
        series.note_evidence(f"PostgreSQL: {title}", size, await _explain(raw, statement, []))
    await raw.execute("DELETE FROM active_context WHERE session_id = 'x-plan'")
    await raw.execute("DELETE FROM working_memory WHERE session_id = 'x-plan'")
    for _, (title, build) in statements.items():
        statement, params = build()
        series.note_evidence(
            f"PostgreSQL: {title}, with every migration",
            size,
            await _explain(raw, statement, params),
        )
    if data.builds:
        series.note_evidence(
            "PostgreSQL: seconds to apply each migration again (its index builds) on N facts",
            size,
            "\n".join(f"{m}  N={n:>9,}  {t:6.2f} s" for m, n, t in data.builds),
        )
    for migration, paths in BEFORE_AFTER.items():
        await asyncio.to_thread(_migrate, url, rollback=migration)
        try:
            await raw.execute("ANALYZE")
            for name, (title, build) in statements.items():
                if name not in paths:
                    continue
                statement, params = build()
                series.note_evidence(
                    f"PostgreSQL: {title}, BEFORE {migration}",
                    size,
                    await _explain(raw, statement, params),
                )
        finally:
            await asyncio.to_thread(_migrate, url)
            await raw.execute("ANALYZE")
