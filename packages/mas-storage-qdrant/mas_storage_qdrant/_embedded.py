"""Keep qdrant-client's embedded engine off the caller's event loop.

``AsyncQdrantClient(path=...)`` (``AsyncQdrantLocal``) is async in signature only: each method
body is synchronous NumPy and SQLite work (a brute-force scan per search, one SQLite commit per
upserted point, the whole collection loaded into memory on open). Awaited directly, every call
would stall the caller's loop for its full duration: about half a second to open 10,000 points,
and hundreds of milliseconds per 256-point upsert.

:class:`EngineThread` owns one private event loop in one daemon thread. The embedded client is
created there and every call to it runs there, one at a time, so:

* the caller's loop stays free while the engine works;
* SQLite's same-thread rule holds (the connection is used only by the thread that opened it);
* calls are serialized, which is what the engine needs (it has no locking of its own).

A thread hop costs tens of microseconds (more on a loaded machine), which dwarfs an in-memory
lookup by id (a few microseconds). :meth:`EngineThread.run_inline_if_idle` therefore runs such
quick, memory-only calls on the caller's loop when the engine is idle, holding the same lock the
engine thread holds for every call, and hops only when the engine is busy.

Server mode (``url``) never uses this: its client is truly async (httpx).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["EngineThread"]


async def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


class EngineThread:
    """A private event loop in a daemon thread that runs the embedded engine's calls."""

    def __init__(self, name: str = "qdrant-embedded") -> None:
        #: Held during every engine call, in whichever thread runs it.
        self._busy = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` in the engine thread (awaiting it there if it returns an awaitable).

        Exceptions propagate unchanged to the awaiting caller. Cancelling the caller does not
        interrupt a call already running: the engine's calls never suspend, so it completes.
        """

        async def call() -> Any:
            with self._busy:
                return await _call(fn, args, kwargs)

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        return await asyncio.wrap_future(future)

    async def run_inline_if_idle(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` on the caller's loop if the engine is idle, else in the engine thread.

        Only for calls that are quick and touch memory only (no SQLite: its connection belongs
        to the engine thread), such as a lookup by id. While it runs, the engine thread waits.
        """
        if not self._busy.acquire(blocking=False):
            return await self.run(fn, *args, **kwargs)
        try:
            return await _call(fn, args, kwargs)
        finally:
            self._busy.release()

    async def stop(self) -> None:
        """Stop the loop and join the thread without blocking the caller's loop. Idempotent."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join)
        self._loop.close()
