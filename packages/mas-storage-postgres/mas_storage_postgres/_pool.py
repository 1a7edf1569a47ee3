"""The adapter's connection pools: psycopg_pool, most recently used first, checked without a
ping, and failover to a promoted standby.

Three choices, measured in ``tests/benchmarks/bench_postgres.py`` (see ``docs/benchmarks.md``):

* **No round trip to check a connection.** ``check_connection`` at every checkout (one empty
  query) cost a round trip per call: the adapter ran at 0.4-0.7x a bare psycopg connection.
  :func:`check_connection` instead polls the socket, without blocking: a server that restarted,
  was killed or ended the session has closed it, so it reads as ready (the ``FATAL`` message or
  the end of stream), and only then is the connection pinged, which fails, and the pool drops it
  and takes another. A connection idle for more than :data:`PING_AFTER_IDLE` seconds is pinged
  anyway: a firewall or NAT that forgot it says nothing. A server that stopped answering on a
  live socket (frozen, a network partition) fails the call itself, after ``query_timeout``, as
  a ping would.
* **The pool empties at the first dead connection.** When the check finds one, every idle
  connection is replaced (:meth:`AsyncConnectionPool.drain`): after a restart all of them died
  together, and the pool waits about a second after each failed check, so a pool of dead
  connections could outlast a caller's ``timeout``.
* **A plain checkout.** :meth:`LifoPool.checkout` is ``getconn``/``putconn`` in a small class:
  ``connection()`` adds a generator-based context manager and a ``commit()`` on exit, a no-op
  for the adapter's autocommit connections (``putconn`` rolls back whatever a failed explicit
  transaction left, as ``connection()`` would).
* **Most recently used first** (SQLAlchemy's ``pool_use_lifo``). psycopg_pool hands out its idle
  connections in turn: sequential calls then wake a different, cold server process each time,
  which measured twice as slow as one connection. :class:`LifoPool` takes the newest one, so a
  light load keeps reusing the same warm connections and the others stay idle (and pinged, or
  closed by ``max_idle``, when they are needed again).

**Failover is libpq's.** ``PostgresAdapter`` keeps one pool for everything it writes (and, by
default, reads), and with ``read_from="prefer-standby"`` a second one for the reads that
tolerate staleness. With a URL of several hosts, a new connection tries them in order and keeps
the first whose session matches ``target_session_attrs``: ``read-write`` for the write pool
(added by the settings when the URL names several hosts and no target), so after the primary
dies and a standby is promoted (by Patroni, or by the test harness playing it) the pool's *new*
connections land on the new primary, with no ``connect()`` of the adapter. What this module
adds is the other half: pooled connections to the old primary must not be handed out again.
One whose server died has a closed socket, fails :func:`check_connection`'s ping and empties
the pool; one whose server is alive but no longer takes writes (a primary fenced with
``default_transaction_read_only``, or a connection of a pool that asked for ``any``) is refused
by :func:`check_writable` without a round trip: PostgreSQL 14+ reports ``in_hot_standby`` and
``default_transaction_read_only`` to the client whenever they change (``ParameterStatus``, which
also makes the idle socket ready, so the ping reads it), and libpq keeps the last values.
``READ_ONLY_SQLSTATE`` (a write refused by a read-only server) is a ``StorageConnectionError``
(:mod:`._errors`): such a connection can never take a write again.
"""

from __future__ import annotations

import math
import select
from time import monotonic
from types import TracebackType
from typing import Any, Final

import psycopg
from psycopg_pool import AsyncConnectionPool

__all__ = [
    "PING_AFTER_IDLE",
    "READ_ONLY_SQLSTATE",
    "WRITABLE_TARGETS",
    "BoundedConnection",
    "Checkout",
    "LifoPool",
    "check_connection",
    "check_writable",
    "connect_timeout",
    "refuses_writes",
]

#: A connection idle longer than this (seconds) is pinged at checkout.
PING_AFTER_IDLE: Final = 5.0
#: SQLSTATE ``read_only_sql_transaction``: a write sent to a server that takes no writes.
READ_ONLY_SQLSTATE: Final = "25006"
#: ``target_session_attrs`` values after which a write pool must hold writable sessions only.
WRITABLE_TARGETS: Final = frozenset({"read-write", "primary"})


class BoundedConnection(psycopg.AsyncConnection[Any]):
    """A pooled connection that waits at most ``reply_timeout`` seconds for any server reply.

    libpq has no read timeout, and TCP keepalives never fire while the server's kernel still
    acknowledges packets (a frozen or overloaded server): without a bound a call could wait
    forever. On expiry the connection is closed at once (the pool then discards it, and no
    cancel request is waited for) and ``ConnectionTimeout`` raised: a ``StorageTimeoutError``.
    ``last_reply`` is when the server last answered (``time.monotonic``), for the check.

    This is also what bounds a commit that waits for a synchronous standby that is gone: the
    server holds the reply until the standby confirms, and the call ends here, typed, after
    ``query_timeout`` (the transaction is then committed on the primary but unacknowledged;
    see the README's *Primary and hot standby*). Closing, not cancelling, matters there: a
    cancelled wait for synchronous replication is reported to the client as a success.
    """

    reply_timeout: float = 30.0
    last_reply: float = 0.0
    _poller: Any = None

    async def wait(
        self,
        gen: Any,
        interval: float = 0.1,
        timeout: float | None = None,  # noqa: ASYNC109 (psycopg's signature)
    ) -> Any:
        bound = self.reply_timeout if timeout is None else timeout
        try:
            result = await super().wait(gen, interval, bound)
        except psycopg.errors._WaitTimeout:  # psycopg's own signal for an expired wait
            self.pgconn.finish()
            raise psycopg.errors.ConnectionTimeout(
                f"PostgreSQL sent no reply within {bound:g}s (query_timeout): connection closed"
            ) from None
        self.last_reply = monotonic()
        return result

    def watch_socket(self) -> None:
        """Prepare :meth:`socket_ready` (once, when the pool adds the connection)."""
        self._poller = select.poll()
        self._poller.register(self.pgconn.socket, select.POLLIN)
        self.last_reply = monotonic()

    def socket_ready(self) -> bool:
        """Whether the server sent something (or closed) while the connection sat idle."""
        poller = self._poller
        return poller is None or bool(poller.poll(0))


async def check_connection(conn: BoundedConnection) -> None:
    """The pool's checkout check: a ping only if the socket or the idle time calls for one."""
    if conn.socket_ready() or monotonic() - conn.last_reply > PING_AFTER_IDLE:
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            pool = conn._pool
            if isinstance(pool, AsyncConnectionPool):
                await pool.drain()
            raise


def refuses_writes(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether the connection's server said it takes no writes (no round trip: the last
    ``in_hot_standby`` / ``default_transaction_read_only`` it reported)."""
    info = conn.info
    return "on" in (
        info.parameter_status("in_hot_standby"),
        info.parameter_status("default_transaction_read_only"),
    )


async def check_writable(conn: BoundedConnection) -> None:
    """The write pool's checkout check when it asked for a writable server: alive (as
    :func:`check_connection` sees it), and still writable. Raising discards the connection
    and empties the pool; its next one finds the primary."""
    await check_connection(conn)
    if refuses_writes(conn):
        pool = conn._pool
        if isinstance(pool, AsyncConnectionPool):
            await pool.drain()
        raise psycopg.OperationalError(
            f"the server at {conn.info.host}:{conn.info.port} takes no writes now "
            "(a standby, or a demoted primary): connection discarded"
        )


def connect_timeout(timeout: float) -> int:
    """libpq's ``connect_timeout`` for ``timeout`` s: whole seconds (it treats 1 as 2), per
    host of the URL (psycopg makes one attempt per host)."""
    return max(2, math.ceil(timeout))


class Checkout:
    """``async with pool.checkout() as conn``: one connection from ``pool``, given back on exit."""

    __slots__ = ("_conn", "_pool")

    def __init__(self, pool: LifoPool) -> None:
        self._pool = pool
        self._conn: BoundedConnection | None = None

    async def __aenter__(self) -> BoundedConnection:
        self._conn = await self._pool.getconn()
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool.putconn(conn)


class LifoPool(AsyncConnectionPool[BoundedConnection]):
    """``AsyncConnectionPool`` that hands out its most recently returned connection first."""

    def checkout(self) -> Checkout:
        """A connection for one ``async with`` block (see :class:`Checkout`)."""
        return Checkout(self)

    async def _get_ready_connection(
        self,
        timeout: float | None,  # noqa: ASYNC109 (psycopg_pool's signature)
    ) -> BoundedConnection | None:
        # psycopg_pool takes from the left and returns to the right: bring the newest left.
        if len(self._pool) > 1:
            self._pool.rotate(1)
        return await super()._get_ready_connection(timeout)
