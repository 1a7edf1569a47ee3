"""Fixtures of the PostgresAdapter unit tests: the adapter on a fake pool (see pg_fakes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
from pg_fakes import URL, FakePool, FakeProbe

import mas_storage_postgres._adapter as adapter_module
from mas_storage_postgres import PostgresAdapter


@pytest.fixture
def fake_driver(monkeypatch: pytest.MonkeyPatch) -> type[FakePool]:
    """Replace the pool class and the probe connection inside the adapter module."""
    FakePool.instances = []
    FakeProbe.calls = []
    FakeProbe.error = None
    monkeypatch.setattr(adapter_module, "LifoPool", FakePool)
    monkeypatch.setattr(psycopg.AsyncConnection, "connect", FakeProbe.connect)
    return FakePool


@pytest.fixture
async def l1(fake_driver: type[FakePool]) -> AsyncIterator[tuple[PostgresAdapter, FakePool]]:
    """A connected adapter on ``active_context`` and its fake pool."""
    adapter = PostgresAdapter({"url": URL, "table": "active_context"})
    await adapter.connect()
    yield adapter, fake_driver.instances[-1]
    await adapter.disconnect()


@pytest.fixture
async def l2(fake_driver: type[FakePool]) -> AsyncIterator[tuple[PostgresAdapter, FakePool]]:
    """A connected adapter on ``working_memory`` and its fake pool."""
    adapter = PostgresAdapter({"url": URL, "table": "working_memory"})
    await adapter.connect()
    yield adapter, fake_driver.instances[-1]
    await adapter.disconnect()
