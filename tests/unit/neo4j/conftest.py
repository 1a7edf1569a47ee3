"""A scripted stand-in for ``neo4j.AsyncDriver``: records every query and its parameters.

``driver.respond(fn)`` installs ``fn(query, params, mode) -> FakeResult | Exception``; the
default answers every query with no rows and zero counters. Sessions, managed transactions and
results implement just the surface the adapter uses, so a test sees exactly what would have
been sent to the server (and in which access mode and database).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from mas_storage_neo4j import Neo4jAdapter

_COUNTER_NAMES = (
    "nodes_created",
    "nodes_deleted",
    "relationships_created",
    "relationships_deleted",
    "properties_set",
    "labels_added",
    "constraints_added",
)


class FakeResult:
    """Rows (plain dicts) plus a summary with counters and a query type."""

    def __init__(
        self, rows: list[dict[str, Any]] | None = None, query_type: str = "r", **counters: int
    ) -> None:
        self.rows = list(rows or [])
        values = dict.fromkeys(_COUNTER_NAMES, 0) | counters
        self.summary = SimpleNamespace(counters=SimpleNamespace(**values), query_type=query_type)

    def __aiter__(self) -> Any:
        async def gen() -> Any:
            for row in self.rows:
                yield row

        return gen()

    async def data(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.rows]

    async def consume(self) -> Any:
        return self.summary


class FakeTx:
    def __init__(self, driver: FakeDriver, mode: str) -> None:
        self.driver = driver
        self.mode = mode

    async def run(self, query: str, params: dict[str, Any] | None = None) -> FakeResult:
        self.driver.queries.append((query, dict(params or {}), self.mode))
        answer = self.driver.responder(query, params or {}, self.mode)
        if isinstance(answer, BaseException):
            raise answer
        return answer


class FakeSession:
    def __init__(self, driver: FakeDriver) -> None:
        self.driver = driver

    async def __aenter__(self) -> FakeSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def _run(self, fn: Callable[..., Any], mode: str) -> Any:
        self.driver.transactions.append(
            (mode, getattr(fn, "timeout", None)),
        )
        return await fn(FakeTx(self.driver, mode))

    async def execute_read(self, fn: Callable[..., Any]) -> Any:
        return await self._run(fn, "READ")

    async def execute_write(self, fn: Callable[..., Any]) -> Any:
        return await self._run(fn, "WRITE")


class FakeDriver:
    def __init__(self) -> None:
        self.queries: list[tuple[str, dict[str, Any], str]] = []
        self.transactions: list[tuple[str, float | None]] = []
        self.session_kwargs: list[dict[str, Any]] = []
        self.closed = 0
        self.connectivity_error: BaseException | None = None
        self.responder: Callable[[str, dict[str, Any], str], Any] = lambda q, p, m: FakeResult()

    def respond(self, fn: Callable[[str, dict[str, Any], str], Any]) -> None:
        self.responder = fn

    def session(self, **kwargs: Any) -> FakeSession:
        self.session_kwargs.append(kwargs)
        return FakeSession(self)

    async def verify_connectivity(self) -> None:
        if self.connectivity_error is not None:
            raise self.connectivity_error

    async def close(self) -> None:
        self.closed += 1

    def texts(self) -> list[str]:
        return [q for q, _, _ in self.queries]


@pytest.fixture
def fake_driver() -> FakeDriver:
    return FakeDriver()


@pytest.fixture
def fake_result() -> type[FakeResult]:
    return FakeResult


@pytest.fixture
def driver_class() -> type[FakeDriver]:
    return FakeDriver


@pytest.fixture
async def adapter(fake_driver: FakeDriver) -> Any:
    """A connected adapter over the fake driver; the connect-time queries are forgotten."""
    adapter = Neo4jAdapter({"database": "graphdb"}, driver=fake_driver)
    await adapter.connect()
    fake_driver.queries.clear()
    fake_driver.transactions.clear()
    fake_driver.session_kwargs.clear()
    yield adapter
    await adapter.disconnect()
