"""A fake psycopg pool for the PostgresAdapter unit tests (imported by their conftest).

``FakePool`` stands in for ``psycopg_pool.AsyncConnectionPool``: it records every statement
(rendered to text) with its parameters, and answers from a queue of scripted results, so each
test says what the "server" returns and asserts on what the adapter sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

URL = "postgresql://mas:s3cret-pw@127.0.0.1:55432/mas_memory"


def render(statement: Any) -> str:
    """A statement as text: plain strings as they are, ``sql.Composed`` rendered."""
    if isinstance(statement, str):
        return statement
    return statement.as_string(None)


@dataclass
class Result:
    """What one statement returns: rows (tuples or dicts), a rowcount, or an error to raise."""

    rows: list[Any] = field(default_factory=list)
    rowcount: int = 0
    error: BaseException | None = None


class FakeCursor:
    def __init__(self, conn: FakeConn, result: Result | None = None) -> None:
        self.conn = conn
        self.result = result or Result()
        self.rowcount = self.result.rowcount

    async def execute(self, statement: Any, params: Any = None) -> FakeCursor:
        result = self.conn.run(statement, params)
        self.result = result
        self.rowcount = result.rowcount
        return self

    async def fetchone(self) -> Any:
        return self.result.rows[0] if self.result.rows else None

    async def fetchall(self) -> list[Any]:
        return list(self.result.rows)

    @asynccontextmanager
    async def copy(self, statement: Any) -> AsyncIterator[FakeCopy]:
        self.conn.run(statement, None)
        copier = FakeCopy()
        self.conn.copies.append(copier)
        yield copier
        if self.conn.copy_error is not None:
            raise self.conn.copy_error


class FakeCopy:
    def __init__(self) -> None:
        self.types: list[str] = []
        self.rows: list[tuple[Any, ...]] = []

    def set_types(self, types: list[str]) -> None:
        self.types = list(types)

    async def write_row(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)


class FakeInfo:
    """``conn.info``: where the connection goes and what the server reported."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 55432
        self.status: dict[str, str] = {"in_hot_standby": "off"}

    def parameter_status(self, name: str) -> str | None:
        return self.status.get(name)


class FakeConn:
    def __init__(self, pool: FakePool) -> None:
        self.pool = pool
        self.info = FakeInfo()
        self.copies: list[FakeCopy] = []
        self.copy_error: BaseException | None = None

    def run(self, statement: Any, params: Any) -> Result:
        self.pool.executed.append((render(statement), params))
        result = self.pool.results.pop(0) if self.pool.results else Result()
        if result.error is not None:
            raise result.error
        return result

    async def execute(self, statement: Any, params: Any = None) -> FakeCursor:
        return await FakeCursor(self).execute(statement, params)

    def cursor(self, row_factory: Any = None) -> FakeCursor:
        return FakeCursor(self)

    @asynccontextmanager
    async def pipeline(self) -> AsyncIterator[None]:
        self.pool.events.append("pipeline")
        yield

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        self.pool.events.append("begin")
        try:
            yield
        except BaseException:
            self.pool.events.append("rollback")
            raise
        self.pool.events.append("commit")


class FakePool:
    """Records the constructor arguments and every statement; answers from ``results``."""

    instances: list[FakePool] = []

    def __init__(self, conninfo: str, **kwargs: Any) -> None:
        self.conninfo = conninfo
        self.kwargs = kwargs
        self.executed: list[tuple[str, Any]] = []
        self.results: list[Result] = []
        self.events: list[str] = []
        self.opened: dict[str, Any] | None = None
        self.closed = False
        self.open_error: BaseException | None = None
        self.conn = FakeConn(self)
        FakePool.instances.append(self)

    async def open(self, wait: bool = False, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        self.opened = {"wait": wait, "timeout": timeout}
        if self.open_error is not None:
            raise self.open_error

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        self.closed = True

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[FakeConn]:
        yield self.conn

    def checkout(self) -> Any:
        return self.connection()

    def get_stats(self) -> dict[str, int]:
        return {"pool_min": 2, "pool_max": 10, "pool_size": 2, "pool_available": 2}

    # Test helpers -------------------------------------------------------------------------

    def script(self, *results: Result) -> None:
        """Queue results, one per statement, after the connect-time ``SELECT 1``."""
        self.results.extend(results)

    def statements(self) -> list[str]:
        """Statements sent after ``connect()`` finished."""
        return [sql for sql, _ in self.executed if sql != "SELECT 1"]


class FakeProbe:
    """The direct connection ``connect()`` tries first."""

    calls: list[tuple[str, dict[str, Any]]] = []
    error: BaseException | None = None

    def __init__(self) -> None:
        self.closed = False

    @classmethod
    async def connect(cls, conninfo: str, **kwargs: Any) -> FakeProbe:
        cls.calls.append((conninfo, kwargs))
        if cls.error is not None:
            raise cls.error
        return cls()

    async def close(self) -> None:
        self.closed = True
