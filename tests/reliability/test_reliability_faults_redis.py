"""Redis under faults: kill -9 and a graceful restart mid-load, SIGSTOP/SIGCONT, persistence.

The adapter's client has a socket timeout per command, retries connection errors a bounded
number of times, and reconnects on the next call, so the same client serves after a restart.

Redis is a cache, but the local stack runs it with ``appendonly yes`` and
``appendfsync everysec``. That promises less than "every reply is on disk": while a background
fsync is still running, Redis 7.0 keeps new writes in its own AOF buffer for up to 2 s and
replies meanwhile (``flushAppendOnlyFile`` in ``aof.c``), so SIGKILL on a busy disk loses them.
What ``everysec`` does promise across a process kill: a write Redis has *written* to its AOF (the
buffer is empty, ``INFO persistence`` ``aof_buffer_length:0``) survives, because the kernel
holds it. The TTL test waits for exactly that before the kill; the kill -9 under load sets
``appendfsync always`` on the running server (``Target.fsync_each_write``), where a reply means
written and fsynced. Both still fail if the adapter loses or mangles a write. Expiry times are
absolute, so a session keeps its remaining TTL across the restart. docs/reliability.md has the
evidence.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from faults import FAULTS, HOLD, TIMEOUT, StackFaults, fault_run
from stack_tls import raw_redis

from mas_storage_redis import RedisAdapter, session_key

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_redis_recovers_on_the_same_adapter(
    fault: str, faults: StackFaults, stack_outputs: dict[str, Any]
) -> None:
    report = await fault_run(faults, stack_outputs, "redis", fault)
    report.check()


async def test_redis_keeps_acknowledged_turns_and_their_ttls_across_kill_9(
    faults: StackFaults, stack_outputs: dict[str, Any], stack_admin: dict[str, Any]
) -> None:
    """What the cache keeps: every acknowledged turn, with its absolute expiry time. The
    adapter writes as its ACL user; the checks (``CONFIG``, ``TTL``) are the operator's."""
    url, admin_url = stack_outputs["redis_url"], stack_admin["redis_admin_url"]
    kept = f"test-rel-redis-{uuid.uuid4().hex[:10]}"
    brief = f"test-rel-redis-{uuid.uuid4().hex[:10]}"

    async def ask(*command: Any) -> Any:  # a fresh raw client: the old sockets die with Redis
        raw = raw_redis(admin_url, stack_outputs, decode_responses=True)
        try:
            return await raw.execute_command(*command)
        finally:
            await raw.aclose()

    faults.require("redis")
    adapter = RedisAdapter({"url": url, "socket_timeout": TIMEOUT, "window_size": 50})
    try:
        settings = await ask("CONFIG", "GET", "append*")
        assert {"appendonly": "yes", "appendfsync": "everysec"}.items() <= settings.items(), (
            f"the local Redis persists differently than this test documents: {settings}"
        )
        await adapter.connect()
        for turn in range(20):
            await adapter.cache_turn(kept, turn, f"turn {turn}", ttl=3600)
        await adapter.cache_turn(brief, 0, "expires while Redis is down", ttl=1)
        await _aof_written(ask)  # everysec's promise across a process kill starts here
        await faults.kill("redis", hold=HOLD)  # down longer than the brief session's TTL

        turns = await adapter.get_cached_turns(kept, limit=50)  # the same adapter, no connect()
        assert [t["turn_id"] for t in turns] == list(range(19, -1, -1))
        assert 0 < await ask("TTL", session_key(kept)) <= 3600 - int(HOLD)
        assert await ask("EXISTS", session_key(brief)) == 0  # expiry is absolute: not revived
    finally:
        await adapter.disconnect()
        await ask("DEL", session_key(kept), session_key(brief))


#: Redis 7.0 postpones the AOF write at most 2 s behind a slow fsync, then writes anyway.
AOF_WRITE_WITHIN = 2.0 + TIMEOUT


async def _aof_written(ask: Any) -> None:
    """Wait until Redis has written its AOF buffer (every acknowledged write) to the file.

    The INFO command runs after every earlier reply, so ``aof_buffer_length:0`` then means every
    write acknowledged before it is in the AOF file, which a SIGKILL of Redis cannot take back.
    """
    deadline = time.monotonic() + AOF_WRITE_WITHIN
    while True:
        info = await ask("INFO", "persistence")
        if info["aof_buffer_length"] == 0:
            return
        assert time.monotonic() < deadline, (
            f"Redis kept its AOF buffer unwritten for {AOF_WRITE_WITHIN:g}s: {info}"
        )
        await asyncio.sleep(0.05)
