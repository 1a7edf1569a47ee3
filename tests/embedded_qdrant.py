"""Connecting to the embedded Qdrant while another short-lived client holds the collection.

The embedded engine (Qdrant Edge) admits one client per collection at a time (a lock on its
WAL). Tests that open a collection of the stack's own path may meet another client of it
closing; they wait for it rather than fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_fixed

from mas_storage import StorageAdapter, StorageConnectionError

__all__ = ["connect_when_unlocked", "loop_gaps"]


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, StorageConnectionError) and "locked" in str(exc)


async def connect_when_unlocked(adapter: StorageAdapter, attempts: int = 60) -> None:
    """``adapter.connect()``, retried every 0.25 s while the embedded collection is locked."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(_locked),
        stop=stop_after_attempt(attempts),
        wait=wait_fixed(0.25),
        reraise=True,
    ):
        with attempt:
            await adapter.connect()


@asynccontextmanager
async def loop_gaps(tick: float = 0.0) -> AsyncIterator[list[float]]:
    """The times (s) between turns of a ticker on this loop, beyond its own ``tick`` sleep,
    while the block runs: the loop's stalls."""
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(tick)
            now = time.perf_counter()
            gaps.append(now - last - tick)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        yield gaps
    finally:
        task.cancel()
