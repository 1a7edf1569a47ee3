"""Redis under faults: kill -9 and a graceful restart mid-load, SIGSTOP/SIGCONT, persistence.

The adapter's client has a socket timeout per command, retries connection errors a bounded
number of times, and reconnects on the next call, so the same client serves after a restart.

Redis is a cache, but the local stack runs it with ``appendonly yes`` and
``appendfsync everysec``: Redis appends every write to its AOF before it replies, so a process
killed with SIGKILL loses no acknowledged write (only an OS crash could lose the last second),
and expiry times are absolute, so a session keeps its remaining TTL across the restart. The
tests check exactly that on the running server's own settings.
"""

from __future__ import annotations

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
        await faults.kill("redis", hold=HOLD)  # down longer than the brief session's TTL

        turns = await adapter.get_cached_turns(kept, limit=50)  # the same adapter, no connect()
        assert [t["turn_id"] for t in turns] == list(range(19, -1, -1))
        assert 0 < await ask("TTL", session_key(kept)) <= 3600 - int(HOLD)
        assert await ask("EXISTS", session_key(brief)) == 0  # expiry is absolute: not revived
    finally:
        await adapter.disconnect()
        await ask("DEL", session_key(kept), session_key(brief))
