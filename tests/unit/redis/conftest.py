"""A recording stand-in for ``redis.asyncio.Redis`` for the adapter's unit tests.

Single commands are ``AsyncMock``s (set ``return_value`` / ``side_effect`` per test). Pipelines
record their commands; ``executed`` holds ``(transaction, commands)`` for every executed one,
so a test can assert exactly what the adapter sent and in how many round trips.

Writes go through the adapter's one Lua script (``EVAL``): the fake keeps each call's raw
arguments in ``evals`` and also appends to ``executed`` the commands the script runs for them
(``LREM`` per payload, ``LPUSH``, ``LTRIM``, ``EXPIRE`` per key) as one atomic unit. What the
script really does on a server is tested against Redis in ``tests/integration/redis``.
"""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import AsyncMock

import pytest

from mas_storage_redis import RedisAdapter

PASSWORD = "unit-Secret-pw-42"
URL = f"redis://:{PASSWORD}@127.0.0.1:61999/0"


class FakePipeline:
    """Records chained commands; ``execute`` returns the client's next queued result."""

    def __init__(self, client: FakeRedis, transaction: bool) -> None:
        self.client = client
        self.transaction = transaction
        self.commands: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        def command(*args: Any) -> FakePipeline:
            self.commands.append((name, *args))
            return self

        return command

    async def execute(self) -> list[Any]:
        self.client.executed.append((self.transaction, self.commands))
        if self.client.pipeline_error is not None:
            raise self.client.pipeline_error
        if self.client.pipeline_results:
            return self.client.pipeline_results.pop(0)
        return [1] * len(self.commands)


class FakeRedis:
    """Just the surface of ``redis.asyncio.Redis`` the adapter uses."""

    def __init__(self) -> None:
        self.ping = AsyncMock(return_value=True)
        self.aclose = AsyncMock()
        self.lrange = AsyncMock(return_value=[])
        self.delete = AsyncMock(return_value=0)
        self.llen = AsyncMock(return_value=0)
        self.exists = AsyncMock(return_value=0)
        self.expire = AsyncMock(return_value=True)
        self.info = AsyncMock(return_value={})
        self.executed: list[tuple[bool, list[tuple[Any, ...]]]] = []
        self.pipeline_results: list[list[Any]] = []
        self.pipeline_error: BaseException | None = None
        self.evals: list[tuple[Any, ...]] = []

    async def eval(self, script: str, numkeys: int, *args: Any) -> int:
        """Record an EVAL of the write script and the commands it runs (see the module doc)."""
        self.evals.append((script, numkeys, *args))
        keys, (window, ttl, *rest) = args[:numkeys], args[numkeys:]
        counts, payloads = rest[:numkeys], rest[numkeys:]
        commands: list[tuple[Any, ...]] = []
        for key, count in zip(keys, counts, strict=True):
            mine, payloads = payloads[:count], payloads[count:]
            commands += [("lrem", key, 0, payload) for payload in mine]
            commands += [("lpush", key, *mine), ("ltrim", key, 0, window - 1), ("expire", key, ttl)]
        assert not payloads, "more payloads than the counts announce"
        self.executed.append((True, commands))
        if self.pipeline_error is not None:
            raise self.pipeline_error
        return numkeys

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self, transaction)

    def single_calls(self) -> list[str]:
        """Names of the single (non-pipelined) commands awaited so far."""
        names = ("lrange", "delete", "llen", "exists", "expire", "info")
        return [name for name in names if getattr(self, name).await_count]


def _entry(turn_id: int, session_id: str = "s-1", **extra: Any) -> bytes:
    """A cached list element as Redis returns it (bytes of compact JSON)."""
    data = {
        "session_id": session_id,
        "turn_id": turn_id,
        "content": f"m{turn_id}",
        "timestamp": "2025-10-20T10:00:00+00:00",
        "metadata": {},
        **extra,
    }
    return json.dumps(data, separators=(",", ":")).encode()


@pytest.fixture
def entry() -> Any:
    """``entry(turn_id, session_id="s-1", **extra)``: a cached element as Redis returns it."""
    return _entry


@pytest.fixture
def fake() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
async def make_adapter(fake: Any) -> Any:
    """Build a connected adapter over ``fake``: ``await make_adapter(window_size=3)``."""

    async def build(**config: Any) -> RedisAdapter:
        settings = {"url": URL, "window_size": 5, "ttl_seconds": 3600, **config}
        adapter = RedisAdapter(settings, client=fake)
        await adapter.connect()
        return adapter

    return build


@pytest.fixture
async def adapter(make_adapter: Any) -> RedisAdapter:
    return await make_adapter()  # type: ignore[no-any-return]
