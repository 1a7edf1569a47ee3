"""Connecting to the embedded Qdrant while another short-lived client holds its path.

Qdrant's local mode admits one client per directory (a file lock). Tests that open the stack's
own path may meet another test's client closing; they wait for it rather than fail.
"""

from __future__ import annotations

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_fixed

from mas_storage import StorageAdapter, StorageConnectionError

__all__ = ["connect_when_unlocked"]


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, StorageConnectionError) and "locked" in str(exc)


async def connect_when_unlocked(adapter: StorageAdapter, attempts: int = 60) -> None:
    """``adapter.connect()``, retried every 0.25 s while the embedded path is locked."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(_locked),
        stop=stop_after_attempt(attempts),
        wait=wait_fixed(0.25),
        reraise=True,
    ):
        with attempt:
            await adapter.connect()
