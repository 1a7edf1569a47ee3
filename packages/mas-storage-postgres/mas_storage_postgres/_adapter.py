"""PostgresAdapter: L1 active context (recent turns) and L2 working memory (facts) on PostgreSQL.

One ``psycopg_pool.AsyncConnectionPool`` of autocommit connections (most recently used first,
checked without a round trip: :mod:`._pool`): a single statement is one round trip, and
multi-statement work opens an explicit transaction (pipelined where it can be). With
``read_from="prefer-standby"`` a second pool serves the reads from a standby; the pools'
connections, checks and failover rules live in :mod:`._pool`. The statements live in
:mod:`._sql` (whitelisted names, bind parameters only), validation in :mod:`._records`, error
classification in :mod:`._errors`, the replay rule of facts written with an ``idempotency_key``
in :mod:`._facts`. The core wraps every public coroutine here (connection check, metrics, error
translation through ``_map_error``), so no method catches driver errors itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import PoolClosed

from mas_storage import (
    DatabaseFacts,
    StorageAdapter,
    StorageDataError,
    StorageError,
    mask_url,
    redact,
)

from . import _sql
from ._config import ACTIVE_CONTEXT, WORKING_MEMORY
from ._errors import map_error
from ._facts import batch_has_keys, insert_keyed_fact, move_fact_batch
from ._isotime import register as register_iso_timestamptz
from ._pool import (
    WRITABLE_TARGETS,
    BoundedConnection,
    LifoPool,
    check_connection,
    check_writable,
    connect_timeout,
)
from ._records import (
    FactRow,
    Row,
    parse_id,
    prepare_record,
    row_to_dict,
    to_aware_datetime,
    validate_session_id,
    validate_turn_id,
)
from ._settings import PostgresSettings

__all__ = ["PostgresAdapter"]

logger = logging.getLogger(__name__)

#: Binary COPY types of ``id`` plus each table's insert columns (see :meth:`store_many`).
_COPY_TYPES: Final = {
    ACTIVE_CONTEXT: ["int4", "text", "int4", "text", "jsonb", "timestamptz", "timestamptz"],
    WORKING_MEMORY: [
        "int4",
        "text",
        "text",
        "text",
        "float8",
        "int4[]",
        "jsonb",
        "timestamptz",
        "timestamptz",
        "timestamptz",
        "text",
    ],
}
#: First key of the two-int advisory locks that serialise turn numbering per session.
_TURN_LOCK_SPACE: Final = 0x6D6173  # "mas"
#: The table of each domain method, for ``db.collection.name`` (``None``: two tables).
_OPERATION_TABLES: Final[dict[str, str | None]] = {
    "add_turn": ACTIVE_CONTEXT,
    "get_recent_turns": ACTIVE_CONTEXT,
    "delete_turn": ACTIVE_CONTEXT,
    "cleanup_expired_turns": ACTIVE_CONTEXT,
    "add_fact": WORKING_MEMORY,
    "get_facts": WORKING_MEMORY,
    "update_fact": WORKING_MEMORY,
    "clear_session": None,
    "cleanup_expired": None,
}
_UNSET: Final[Any] = object()


def _json_as_is(text: str) -> str:
    """``Jsonb`` dumper for text already serialised and checked by :mod:`._records`."""
    return text


def _jsonb(text: str) -> Jsonb:
    """Metadata JSON text (serialised and checked by :mod:`._records`) bound as ``jsonb``."""
    return Jsonb(text, dumps=_json_as_is)


class PostgresAdapter(StorageAdapter):
    """PostgreSQL adapter for active context (L1, ``active_context``) and working memory (L2).

    Configuration: a :class:`~mas_storage_postgres.PostgresSettings` (every key: ``url``,
    ``pool_size``, ``min_size``, ``timeout``, ``statement_timeout``, ``query_timeout``,
    ``read_from`` and ``table``, the table of the generic API; ``None`` reads it from
    ``POSTGRES_*``, ``.env`` and the stack outputs), or a mapping or URL string validated by
    it. The domain methods name their table themselves. A URL of several hosts (a primary and
    its standby) fails over by libpq's ``target_session_attrs`` (see :mod:`._pool`).

    Example::

        async with PostgresAdapter({"url": url, "table": "active_context"}) as l1:
            record_id = await l1.store({"session_id": "s-1", "turn_id": 1, "content": "Hi"})
            turns = await l1.search({"session_id": "s-1", "limit": 10})
    """

    kind = "postgres"
    settings_model = PostgresSettings
    config: PostgresSettings

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._pool: LifoPool | None = None
        self._read_pool: LifoPool | None = None
        self._lifecycle = asyncio.Lock()

    @property
    def table(self) -> str:
        """The table of the generic API."""
        return self.config.table

    @property
    def _conninfo(self) -> str:
        """The URL or keyword string, revealed for the driver (never logged: see ``_where``)."""
        return self.config.url.get_secret_value()

    @property
    def _where(self) -> str:
        """The server, password masked (a URL's, or a keyword string's ``password=``)."""
        return redact(mask_url(self._conninfo), self._secret_values)

    @property
    def pool(self) -> LifoPool | None:
        """The open pool, or ``None`` before ``connect()`` and after ``disconnect()``."""
        return self._pool

    @property
    def read_pool(self) -> LifoPool | None:
        """The standby reads' pool (``read_from="prefer-standby"``), else ``None``."""
        return self._read_pool

    def _telemetry_facts(self) -> DatabaseFacts:
        """Span/metric facts: server and database from the conninfo (URL or ``key=value``),
        the configured table for the generic API, each domain method's own table."""
        try:
            info = conninfo_to_dict(self._conninfo)
        except psycopg.Error:
            info = {}
        # Several hosts: the first (the primary as configured; libpq may use another).
        hosts = self.config.hosts
        host, port = hosts[0] if hosts else ("", None)
        return DatabaseFacts(
            "postgresql",
            host or None,
            (port or 5432) if host else None,
            str(info["dbname"]) if info.get("dbname") else None,
            self.config.table,
            _OPERATION_TABLES,
        )

    def _map_error(self, exc: Exception, op: str) -> type[StorageError] | StorageError | None:
        return map_error(exc, op, timeout=self.config.timeout, pool_size=self.config.pool_size)

    def _open_pool(self) -> LifoPool:
        # The core refuses calls before connect(); this covers a call racing disconnect().
        if self._pool is None:
            raise PoolClosed("the adapter was disconnected")
        return self._pool

    def _reads(self) -> LifoPool:
        """The pool of the read-only methods: the standby reads' pool when configured."""
        pool = self._open_pool()
        return self._read_pool or pool

    # -- lifecycle ----------------------------------------------------------------------------

    def _connection_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "autocommit": True,
            # libpq counts whole seconds (and treats 1 as 2): round up, never below 2.
            "connect_timeout": connect_timeout(self.config.timeout),
        }
        if self.config.statement_timeout is not None:
            ms = max(1, round(self.config.statement_timeout * 1000))
            kwargs["options"] = f"-c statement_timeout={ms}"
        kwargs.update(self.config.tls_options())  # sslmode, sslrootcert (docs/security.md)
        kwargs.update(self.config.session_options())  # several hosts: read-write
        return kwargs

    def _new_pool(self, kwargs: dict[str, Any], *, reads: bool = False) -> LifoPool:
        """A closed pool: the write pool, or (``reads``) the standby reads' one."""
        target = kwargs.get("target_session_attrs") or self.config.conninfo_params().get(
            "target_session_attrs"
        )
        # No round trip unless the socket or the idle time calls for one (._pool).
        check: Any = check_connection
        if reads:
            kwargs = {**kwargs, "target_session_attrs": "prefer-standby"}
        elif target in WRITABLE_TARGETS:
            check = check_writable  # alive, and still the primary (see ._pool)
        suffix = "-standby-reads" if reads else ""
        return LifoPool(
            self._conninfo,
            min_size=self.config.min_size,
            max_size=self.config.pool_size,
            timeout=self.config.timeout,
            kwargs=kwargs,
            connection_class=BoundedConnection,
            configure=self._configure_connection,
            check=check,
            # Background reconnection backs off exponentially (1, 2, 4, ... s): after a long
            # outage a slot could wait long after the server is back. Give a slot up after
            # `timeout` instead; the pool then grows again on demand, trying at once.
            reconnect_timeout=self.config.timeout,
            name=f"mas-postgres-{self.config.table}{suffix}",
            open=False,
        )

    async def connect(self) -> None:
        """Open the pool and check that the server answers. Calling it again is harmless.

        One direct connection is tried first, so an unreachable server or refused credentials
        fail at once with the server's own reason, instead of a pool retrying in the background
        until ``timeout``. The pool then opens, waits for ``min_size`` connections and answers
        ``SELECT 1`` (and so does the standby reads' pool, when configured). Pooled connections
        are checked at every checkout, without a round trip (:mod:`._pool`), so after a server
        restart, or a failover to a promoted standby, dead ones are replaced without a new
        ``connect()``.
        """
        async with self._lifecycle:
            if self._pool is not None:
                return
            kwargs = self._connection_kwargs()
            self.config.warn_if_insecure(f"postgres at {self._server()}")
            async with asyncio.timeout(self.config.timeout):
                probe = await psycopg.AsyncConnection.connect(self._conninfo, **kwargs)
            await probe.close()
            pools = [self._new_pool(kwargs)]
            if self.config.read_from == "prefer-standby":
                pools.append(self._new_pool(kwargs, reads=True))
            try:
                for pool in pools:
                    await pool.open(wait=True, timeout=self.config.timeout)
                    async with pool.connection() as conn:
                        await conn.execute("SELECT 1")
            except BaseException:
                for pool in pools:
                    await pool.close()
                raise
            pool = pools[0]
            self._read_pool = pools[1] if len(pools) > 1 else None
            self._pool = pool
            self._connected = True
            logger.info("Connected to PostgreSQL at %s", self._where)

    async def _configure_connection(self, conn: BoundedConnection) -> None:
        """Pool hook for each new connection: bound its waits by ``query_timeout``; read
        ``timestamptz`` as the ISO strings the API returns (:mod:`._isotime`); watch its
        socket for the checkout check."""
        conn.reply_timeout = self.config.query_timeout
        register_iso_timestamptz(conn)
        conn.watch_socket()

    async def disconnect(self) -> None:
        """Close the pool. Safe before ``connect()`` and when called twice."""
        async with self._lifecycle:
            pool, self._pool = self._pool, None
            reads, self._read_pool = self._read_pool, None
            self._connected = False
            if reads is not None:
                await reads.close()
            if pool is not None:
                await pool.close()
                logger.info("Disconnected from PostgreSQL at %s", self._where)

    # -- generic API --------------------------------------------------------------------------

    async def store(self, data: dict[str, Any]) -> str:
        """Insert one record into the configured table and return its id (a string).

        ``active_context`` needs ``session_id``, ``turn_id``, ``content``; ``working_memory``
        needs ``session_id``, ``fact_type``, ``content`` and takes ``confidence`` (1.0),
        ``source_turn_ids``, ``updated_at`` and ``idempotency_key`` (the same replay rule as
        :meth:`add_fact`). Both take ``metadata`` (a dict), ``created_at`` and
        ``ttl_expires_at`` (timezone-aware; rules in :mod:`mas_storage_postgres._records`).
        A duplicate ``(session_id, turn_id)`` raises :class:`StorageDataError`.
        """
        table = self.config.table
        record = prepare_record(data, table, wrap_json=_jsonb)
        if isinstance(record, FactRow) and record.idempotency_key is not None:
            return str(await self._insert_keyed_fact(record))
        async with self._open_pool().checkout() as conn:
            cur = await conn.execute(_sql.insert(table), record)
            row = await cur.fetchone()
        assert row is not None
        return str(row[0])

    async def retrieve(self, id: str, *, include_expired: bool = False) -> dict[str, Any] | None:
        """Record ``id`` of the configured table, or ``None`` (also once it has expired).

        Timestamps come back as ISO-8601 UTC strings, ``metadata`` as a dict, ``id`` as a
        string. A malformed id raises :class:`StorageDataError`.
        """
        table = self.config.table
        record_id = parse_id(id)
        async with self._reads().checkout() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_sql.select_by_id(table, include_expired), (record_id,))
            row = await cur.fetchone()
        return None if row is None else row_to_dict(row)

    async def search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Records of the configured table matching ``query``, expired ones left out.

        Keys: ``session_id``; ``turn_id`` (active_context); ``fact_type`` and
        ``min_confidence`` (working_memory); ``limit`` (10, at most 10000); ``offset`` (0);
        ``sort`` (a column; ``turn_id`` by default for turns, ``created_at`` for facts);
        ``order`` (``asc``/``desc``, default ``desc``); ``include_expired`` (false).
        Unknown keys, sort columns or orders raise :class:`StorageDataError` naming the
        allowed values. Ties are broken by ``id``, so pages never overlap.
        """
        statement, params = _sql.search(self.config.table, query)
        async with self._reads().checkout() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(statement, params)
            rows = await cur.fetchall()
        return [row_to_dict(row) for row in rows]

    async def delete(self, id: str) -> bool:
        """Delete record ``id`` of the configured table; ``False`` only when it does not exist."""
        record_id = parse_id(id)
        async with self._open_pool().checkout() as conn:
            cur = await conn.execute(_sql.delete_by_id(self.config.table), (record_id,))
            return cur.rowcount > 0

    async def delete_expired(self) -> int:
        """Delete the configured table's expired rows (its cleanup function); return how many."""
        async with self._open_pool().checkout() as conn:
            cur = await conn.execute(_sql.cleanup(self.config.table))
            row = await cur.fetchone()
        assert row is not None
        if row[0]:
            logger.info("Deleted %d expired rows from %s", row[0], self.config.table)
        return int(row[0])

    async def count(self, session_id: str | None = None, *, include_expired: bool = False) -> int:
        """Rows of the configured table (of one session if given), expired ones left out."""
        statement, params = _sql.count(self.config.table, session_id, include_expired)
        async with self._reads().checkout() as conn:
            cur = await conn.execute(statement, params)
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    # -- batch --------------------------------------------------------------------------------

    async def store_many(self, records: Iterable[dict[str, Any]]) -> list[str]:
        """Insert many records into the configured table, all or none; return ids in order.

        Every record is validated before anything is sent (a bad one raises
        :class:`StorageDataError` naming its index). Then, in one transaction, the ids are
        drawn from the table's sequence in one query and the rows streamed with binary
        ``COPY``, which measured about twice as fast as ``executemany`` in pipeline mode (see
        the README). A row the server refuses (a duplicate turn) rolls the whole batch back.

        Facts with an ``idempotency_key`` follow :meth:`add_fact`'s rule: a fact whose key its
        session holds already, with the same fields, is not written again and its stored id
        is returned in its place; other fields raise :class:`StorageDataError` naming the
        record, and nothing of the batch is written. So a re-run of a batch that (maybe)
        committed adds nothing. A key repeated within one session of the batch is refused
        before anything is sent. Such a batch is copied into a temporary table and moved with
        one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` (about half the speed of the plain
        ``COPY``, twice that of ``executemany``; see the README).
        """
        table = self.config.table
        now = datetime.now(UTC)
        prepared: list[Row] = []
        for index, record in enumerate(records):
            try:
                prepared.append(prepare_record(record, table, now, wrap_json=_jsonb))
            except StorageDataError as exc:
                raise StorageDataError(f"Record {index}: {exc.message}") from None
        if not prepared:
            return []
        facts = [row for row in prepared if isinstance(row, FactRow)]
        keyed = table == WORKING_MEMORY and batch_has_keys(facts)
        async with self._open_pool().checkout() as conn, conn.transaction():
            cur = await conn.execute(_sql.RESERVE_IDS, (table, len(prepared)))
            row = await cur.fetchone()
            assert row is not None
            ids = row[0]
            if keyed:
                await conn.execute(_sql.create_fact_batch())
            into = _sql.FACT_BATCH if keyed else None
            async with conn.cursor().copy(_sql.copy_rows(table, into)) as copier:
                copier.set_types(_COPY_TYPES[table])
                for record_id, row in zip(ids, prepared, strict=True):
                    await copier.write_row((record_id, *row))
            if keyed:  # skip the facts stored before, check that they are the same
                ids = await move_fact_batch(conn, ids, facts)
            result = [str(record_id) for record_id in ids]
        return result

    # -- domain API: turns (L1) ---------------------------------------------------------------

    async def add_turn(
        self,
        session_id: str,
        content: str,
        metadata: dict[str, Any] | None = None,
        *,
        turn_id: int | None = None,
        ttl: datetime | timedelta | None = None,
        created_at: datetime | None = None,
    ) -> int:
        """Append a turn to ``active_context`` and return its ``turn_id``.

        Without ``turn_id`` the session's next number is taken (1 for its first turn) under a
        per-session advisory lock, so concurrent calls never collide. With an explicit
        ``turn_id`` the call is idempotent: repeating it with the same content and metadata
        (a retry after a lost reply) returns the turn and adds no second row, while another
        turn under that number raises :class:`StorageDataError`. ``ttl`` is an expiry time or
        a lifetime from ``created_at`` (default: 24 hours).
        """
        record: dict[str, Any] = {
            "session_id": session_id,
            "turn_id": 0 if turn_id is None else turn_id,
            "content": content,
            "metadata": metadata,
            **self._times(ttl, created_at),
        }
        turn = prepare_record(record, ACTIVE_CONTEXT, wrap_json=_jsonb)
        pool = self._open_pool()
        if turn_id is not None:
            async with pool.checkout() as conn:
                cur = await conn.execute(_sql.add_turn_explicit(), turn)
                if await cur.fetchone() is not None:
                    return turn_id
                cur = await conn.execute(
                    _sql.SAME_TURN, (turn.content, turn.metadata, session_id, turn_id)
                )
                same = await cur.fetchone()
            if same is not None and same[0]:
                return turn_id
            raise StorageDataError(
                f"Turn {turn_id} of session {session_id!r} already exists with other content "
                "(a session holds each turn_id once)"
            )
        # Every column but turn_id (the statement numbers the turn), then the lock's session.
        params = (
            turn.session_id,
            turn.content,
            turn.metadata,
            turn.created_at,
            turn.ttl_expires_at,
            session_id,
        )
        async with pool.checkout() as conn:
            async with conn.pipeline(), conn.transaction():
                await conn.execute(_sql.TURN_LOCK, (_TURN_LOCK_SPACE, session_id))
                cur = await conn.execute(_sql.add_turn_auto(), params)
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def get_recent_turns(
        self, session_id: str, limit: int = 10, *, include_expired: bool = False
    ) -> list[dict[str, Any]]:
        """The last ``limit`` turns of a session, oldest first (ready to replay as context)."""
        params = (validate_session_id(session_id), _sql.int_in(limit, "limit", 1, _sql.MAX_LIMIT))
        async with self._reads().checkout() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_sql.recent_turns(include_expired), params)
            rows = await cur.fetchall()
        return [row_to_dict(row) for row in reversed(rows)]

    async def delete_turn(self, session_id: str, turn_id: int) -> bool:
        """Delete one turn; ``False`` when the session has no such turn."""
        params = (validate_session_id(session_id), validate_turn_id(turn_id))
        async with self._open_pool().checkout() as conn:
            cur = await conn.execute(
                "DELETE FROM active_context WHERE session_id = %s AND turn_id = %s", params
            )
            return cur.rowcount > 0

    async def cleanup_expired_turns(self) -> int:
        """Delete expired turns (``cleanup_expired_active_context()``); return how many."""
        async with self._open_pool().checkout() as conn:
            cur = await conn.execute(_sql.cleanup(ACTIVE_CONTEXT))
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    # -- domain API: facts (L2) ---------------------------------------------------------------

    async def add_fact(
        self,
        session_id: str,
        fact_type: str,
        content: str,
        confidence: float = 1.0,
        *,
        source_turn_ids: Sequence[int] | None = None,
        metadata: dict[str, Any] | None = None,
        ttl: datetime | timedelta | None = None,
        created_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Add a fact to ``working_memory`` and return its id (default lifetime: 7 days).

        Facts have no natural key, so a blind retry of a call whose reply was lost (a
        :class:`StorageTimeoutError` after the INSERT committed) would add the fact twice.
        Pass ``idempotency_key`` (1 to 255 characters, unique per session) to make the call
        safe to retry: repeating it with the same ``fact_type``, ``content``, ``confidence``,
        ``source_turn_ids`` and ``metadata`` returns the stored fact's id and writes nothing;
        the same key with other fields raises :class:`StorageDataError` and leaves the stored
        fact as it was. The times are not compared (a retry computes its own). The key stays
        taken until the fact is deleted (``delete``, ``clear_session``, expiry cleanup), and
        :meth:`update_fact` keeps it: a late replay of the original call after an update is
        refused as other content.
        """
        record: dict[str, Any] = {
            "session_id": session_id,
            "fact_type": fact_type,
            "content": content,
            "confidence": confidence,
            "source_turn_ids": source_turn_ids,
            "metadata": metadata,
            "idempotency_key": idempotency_key,
            **self._times(ttl, created_at),
        }
        fact = prepare_record(record, WORKING_MEMORY, wrap_json=_jsonb)
        if fact.idempotency_key is not None:
            return await self._insert_keyed_fact(fact)
        async with self._open_pool().checkout() as conn:
            cur = await conn.execute(_sql.insert(WORKING_MEMORY), fact)
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def _insert_keyed_fact(self, fact: FactRow) -> int:
        """Insert a prepared fact that has a key (the replay rule of :meth:`add_fact`)."""
        async with self._open_pool().checkout() as conn:
            return await insert_keyed_fact(conn, fact)

    async def get_facts(
        self,
        session_id: str,
        fact_type: str | None = None,
        min_confidence: float | None = None,
        *,
        limit: int = 100,
        include_expired: bool = False,
    ) -> list[dict[str, Any]]:
        """A session's facts, most confident first, optionally of one type and confidence."""
        statement, params = _sql.facts(
            session_id, fact_type, min_confidence, limit, include_expired
        )
        async with self._reads().checkout() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(statement, params)
            rows = await cur.fetchall()
        return [row_to_dict(row) for row in rows]

    async def update_fact(
        self,
        fact_id: int | str,
        *,
        content: str | None = None,
        confidence: float | None = None,
        fact_type: str | None = None,
        source_turn_ids: Sequence[int] | None = None,
        metadata: dict[str, Any] | None = None,
        ttl_expires_at: datetime | None = _UNSET,
    ) -> bool:
        """Change the given fields of a fact; ``False`` when the fact does not exist.

        ``updated_at`` is moved by the table's trigger. ``ttl_expires_at=None`` makes the fact
        permanent. Repeating an update changes nothing more: it is safe to retry. The fact's
        ``idempotency_key`` is never changed.
        """
        given = {
            "content": content,
            "confidence": confidence,
            "fact_type": fact_type,
            "source_turn_ids": source_turn_ids,
            "metadata": metadata,
        }
        changes = {key: value for key, value in given.items() if value is not None}
        if not changes and ttl_expires_at is _UNSET:
            raise StorageDataError(
                "update_fact needs at least one of content, confidence, fact_type, "
                "source_turn_ids, metadata, ttl_expires_at"
            )
        # The same rules as for a new fact, applied to a throwaway record.
        probe = {"session_id": "-", "fact_type": "-", "content": "-", **changes}
        checked = prepare_record(probe, WORKING_MEMORY, wrap_json=_jsonb)._asdict()
        params = [checked[column] for column in changes]
        columns = tuple(changes)
        if ttl_expires_at is not _UNSET:
            columns += ("ttl_expires_at",)
            params.append(
                None if ttl_expires_at is None else to_aware_datetime(ttl_expires_at, "ttl")
            )
        params.append(parse_id(fact_id))
        async with self._open_pool().checkout() as conn:
            cur = await conn.execute(_sql.update_fact(columns), params)
            return cur.rowcount > 0

    # -- domain API: both tables --------------------------------------------------------------

    async def clear_session(self, session_id: str) -> dict[str, int]:
        """Delete a session's turns and facts in one transaction; return counts per table."""
        session = validate_session_id(session_id)
        async with self._open_pool().checkout() as conn:
            async with conn.pipeline(), conn.transaction():
                turns = await conn.execute(
                    "DELETE FROM active_context WHERE session_id = %s", (session,)
                )
                facts = await conn.execute(
                    "DELETE FROM working_memory WHERE session_id = %s", (session,)
                )
            return {ACTIVE_CONTEXT: turns.rowcount, WORKING_MEMORY: facts.rowcount}

    async def cleanup_expired(self) -> dict[str, int]:
        """Delete expired rows of both tables (``cleanup_expired_records()``); return counts."""
        async with self._open_pool().checkout() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT * FROM cleanup_expired_records()")
            row = await cur.fetchone()
        assert row is not None
        counts = {
            ACTIVE_CONTEXT: int(row["active_context_deleted"]),
            WORKING_MEMORY: int(row["working_memory_deleted"]),
            "total": int(row["total_deleted"]),
        }
        if counts["total"]:
            logger.info("Deleted expired rows: %s", counts)
        return counts

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _times(ttl: datetime | timedelta | None, created_at: datetime | None) -> dict[str, Any]:
        """A domain call's ``created_at``/``ttl`` as the record keys ``store`` takes."""
        out: dict[str, Any] = {}
        if created_at is not None:
            out["created_at"] = created_at
        if ttl is None:
            return out
        if isinstance(ttl, timedelta):
            if ttl <= timedelta(0):
                raise StorageDataError("'ttl' as a lifetime must be positive")
            start = (
                datetime.now(UTC)
                if created_at is None
                else to_aware_datetime(created_at, "created_at")
            )
            return {"created_at": start, "ttl_expires_at": start + ttl}
        if isinstance(ttl, datetime):
            out["ttl_expires_at"] = ttl
            return out
        raise StorageDataError(f"'ttl' must be a datetime or a timedelta, got {type(ttl).__name__}")

    async def _get_backend_metrics(self) -> dict[str, Any] | None:
        """Pool figures, the server each pool's connections reach (``host:port``: after a
        failover, the promoted standby), and the configured table's live and expired rows
        (on request only)."""
        pool, reads = self._pool, self._read_pool
        if pool is None:
            return None
        async with pool.connection() as conn:
            cur = await conn.execute(_sql.table_stats(self.config.table))
            row = await cur.fetchone()
            server = f"{conn.info.host}:{conn.info.port}"
        assert row is not None
        figures: dict[str, Any] = {
            "table": self.config.table,
            "active_rows": int(row[0]),
            "expired_rows": int(row[1]),
            "server_version": row[2],
            "server": server,
            "pool": dict(pool.get_stats()),
        }
        if reads is not None:
            async with reads.connection() as conn:
                figures["read_server"] = f"{conn.info.host}:{conn.info.port}"
            figures["read_pool"] = dict(reads.get_stats())
        return figures
