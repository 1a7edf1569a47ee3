"""The adapter's connection pool: psycopg_pool, most recently used first, checked without a ping.

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
"""

from __future__ import annotations

import select
from time import monotonic
from types import TracebackType
from typing import Any, Final

import psycopg
from psycopg_pool import AsyncConnectionPool

__all__ = ["PING_AFTER_IDLE", "BoundedConnection", "Checkout", "LifoPool", "check_connection"]

#: A connection idle longer than this (seconds) is pinged at checkout.
PING_AFTER_IDLE: Final = 5.0


class BoundedConnection(psycopg.AsyncConnection[Any]):
    """A pooled connection that waits at most ``reply_timeout`` seconds for any server reply.

    libpq has no read timeout, and TCP keepalives never fire while the server's kernel still
    acknowledges packets (a frozen or overloaded server): without a bound a call could wait
    forever. On expiry the connection is closed at once (the pool then discards it, and no
    cancel request is waited for) and ``ConnectionTimeout`` raised: a ``StorageTimeoutError``.
    ``last_reply`` is when the server last answered (``time.monotonic``), for the check.
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
