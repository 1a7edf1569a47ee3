"""EngineThread: embedded-engine calls run off the caller's loop, serialized, one thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mas_storage_qdrant._embedded import EngineThread


@pytest.fixture
async def engine() -> EngineThread:
    thread = EngineThread("test-engine")
    yield thread  # type: ignore[misc]
    await thread.stop()


async def test_run_executes_in_the_engine_thread(engine: EngineThread) -> None:
    caller = threading.get_ident()
    where = await engine.run(threading.get_ident)
    assert where != caller
    assert await engine.run(threading.get_ident) == where  # always the same thread

    async def coro(x: int) -> tuple[int, int]:
        return x * 2, threading.get_ident()

    assert await engine.run(coro, 21) == (42, where)


async def test_run_propagates_exceptions_unchanged(engine: EngineThread) -> None:
    def boom() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        await engine.run(boom)


async def test_caller_loop_runs_while_the_engine_works(engine: EngineThread) -> None:
    release = threading.Event()
    call = asyncio.ensure_future(engine.run(release.wait, 5))
    await asyncio.sleep(0.01)  # the loop is free: this returns while the engine is blocked
    assert not call.done()
    release.set()
    assert await call is True


async def test_inline_when_idle_and_hop_when_busy(engine: EngineThread) -> None:
    caller = threading.get_ident()
    assert await engine.run_inline_if_idle(threading.get_ident) == caller

    release = threading.Event()
    order: list[str] = []

    def slow() -> None:
        release.wait(5)
        order.append("slow")

    def quick() -> int:
        order.append("quick")
        return threading.get_ident()

    busy = asyncio.ensure_future(engine.run(slow))
    await asyncio.sleep(0.01)
    queued = asyncio.ensure_future(engine.run_inline_if_idle(quick))
    await asyncio.sleep(0.01)
    assert order == []  # not run inline while the engine is busy
    release.set()
    await busy
    assert await queued != caller
    assert order == ["slow", "quick"]


async def test_stop_is_idempotent(engine: EngineThread) -> None:
    await engine.stop()
    await engine.stop()
