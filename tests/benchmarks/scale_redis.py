"""How the RedisAdapter's paths cost as the cache grows, in its two directions.

* **More sessions** (``window`` 10, the default): N turns in N/10 full sessions. Every path
  touches one session's list, so nothing should depend on N (a hash lookup, then a list of at
  most 10). Paths: ``store`` (a turn into a full session: LREM, LPUSH, LTRIM, EXPIRE in one
  EVAL), ``retrieve``, ``search`` (10 newest), ``store_many`` (1,000 turns over 100 sessions).
* **A longer window**: one session holding N turns (``window_size`` = N), up to 10^5 (a
  10^6-turn window is no cache). Here a read of the 10 newest is O(10) (LRANGE from the head),
  ``retrieve`` of one turn is O(window) by design (a list has no index by turn id), and every
  write is O(window) (the LREM that makes a replayed write harmless scans the list). Paths:
  ``store_w``, ``search_w``, ``retrieve_w``, ``store_many_w`` (1,000 turns into the full list).

Before/after: ``store_many_w (before fix)`` sends the same batch through the adapter's write
script as it was before issue 20 (:data:`OLD_PUSH_SCRIPT`: one LREM per payload, so k payloads
into a window of w cost k x w), by raw EVAL, beside the adapter's current script.

Evidence: for every path and size, the server's own time per command, from the deltas of
``INFO commandstats`` (``usec`` / ``calls`` of ``eval`` and ``lrange``), recorded as
``server_us`` beside the client's latency. Keys are ``session:bench-scale-<hex>-…`` and are
deleted at the end.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import redis.asyncio as aioredis
import scalekit as sk

from mas_storage_redis import RedisAdapter
from mas_storage_redis._turns import encode_turn

#: The adapter's write script before issue 20 (one LREM per payload), kept for the before/after.
OLD_PUSH_SCRIPT = """
local window, ttl, nkeys = tonumber(ARGV[1]), ARGV[2], #KEYS
for k = 1, nkeys do
  local kind = redis.call('TYPE', KEYS[k]).ok
  if kind ~= 'list' and kind ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[k] .. ' holds a ' .. kind .. ', not a list')
  end
end
local first = 3 + nkeys
for k = 1, nkeys do
  local key, last = KEYS[k], first + tonumber(ARGV[2 + k]) - 1
  for i = first, last do
    redis.call('LREM', key, 0, ARGV[i])
  end
  for i = first, last, 1000 do
    redis.call('LPUSH', key, unpack(ARGV, i, math.min(i + 999, last)))
  end
  redis.call('LTRIM', key, 0, window - 1)
  redis.call('EXPIRE', key, ttl)
  first = last + 1
end
return nkeys
"""
WINDOW = 10
NOTES = [
    "The server time in brackets is Redis's own microseconds per EVAL or LRANGE (INFO "
    "commandstats deltas); `server_us` in scaling.json splits it by command.",
    "**What grew, and the fix.** `store_many_w (before fix)` is the adapter's write script "
    "before issue 20: one LREM per payload, each scanning the whole list, so 1,000 turns "
    "into a window of N cost 1,000 x N on the single-threaded server (its server time per "
    "EVAL grows linearly with N, and every other client waits meanwhile). The script now "
    "de-duplicates a batch of more than 8 turns per key in one LRANGE pass against a Lua "
    "set, rebuilding the list only when it holds duplicates: `store_many_w`, O(N + 1,000).",
    "**O(window) by design.** `store_w` (one turn) keeps one LREM: the scan that makes a "
    "replayed write harmless is O(window). `retrieve_w` reads and decodes the list to find "
    "one turn id: a list has no index by turn id. With the default window (10) both touch "
    "10 entries; a cache meant to hold 10^4+ turns per session would want a hash per "
    "session. `search_w` (the 10 newest, LRANGE 0 9 from the head) stays flat.",
    "**Across sessions** (paths without `_w`, window 10) nothing depends on the number of "
    "keys: one hash lookup, then a list of at most 10 entries.",
]
BATCH = 1_000
LOAD_CHUNK = 10_000
#: The one-session shape stops here: a window of a million turns is not a cache.
WINDOW_CAP = 100_000
_CONTENT = "Turn {}: what is the capital of France, and how far is it from Berlin?"


async def _command_stats(client: aioredis.Redis) -> dict[str, tuple[int, int]]:
    """``{command: (calls, usec)}`` from ``INFO commandstats``."""
    info = await client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in info.items()
        if isinstance(v, dict)
    }


async def _measured(
    client: aioredis.Redis,
    series: sk.Series,
    size: int,
    name: str,
    meta: tuple[str, str, str],
    call: sk.Call,
    calls: int,
    warmup: int,
) -> None:
    """Measure one path and record the server's usec per call of its commands."""
    before = await _command_stats(client)
    point = await series.measure(size, name, meta, call, calls=calls, warmup=warmup)
    after = await _command_stats(client)
    server: dict[str, float] = {}
    for command in ("eval", "lrange"):
        n = after.get(command, (0, 0))[0] - before.get(command, (0, 0))[0]
        usec = after.get(command, (0, 0))[1] - before.get(command, (0, 0))[1]
        if n > 0:
            server[command] = usec / n
    point["server_us"] = server
    point["server_ms"] = sum(server.values()) / 1e3 or None


async def run(outputs: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Grow both shapes size by size and measure every path (see the module docstring)."""
    series = sk.series_for("redis", quick)
    sizes = series.sizes
    calls, warmup = (10, 2) if quick else (300, 30)
    url = outputs["redis_url"]
    run_id = f"bench-scale-{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(url)
    try:
        version = (await client.info("server"))["redis_version"]
        await _sessions(url, client, series, sizes, run_id, calls, warmup)
        await _window(
            url, client, series, [n for n in sizes if n <= WINDOW_CAP], run_id, calls, warmup
        )
        await _evidence(client, series, run_id)
    finally:
        keys = [k async for k in client.scan_iter(match=f"session:{run_id}*", count=10_000)]
        for at in range(0, len(keys), 10_000):
            await client.unlink(*keys[at : at + 10_000])
        await client.aclose()
    return sk.scaling_result(
        series,
        version=version,
        shape=(
            f"paths without `_w`: N turns in N/{WINDOW} full sessions (window {WINDOW}); "
            f"paths with `_w`: one session holding N turns (window N, up to {WINDOW_CAP:,})"
        ),
        facts={"key_prefix": f"session:{run_id}"},
        notes=NOTES,
    )


async def _sessions(
    url: str,
    client: aioredis.Redis,
    series: sk.Series,
    sizes: list[int],
    run_id: str,
    calls: int,
    warmup: int,
) -> None:
    adapter = RedisAdapter({"url": url, "window_size": WINDOW})
    await adapter.connect()
    loaded = 0
    try:
        for size in sizes:
            start = loaded

            async def load(start: int = start, size: int = size) -> None:
                for at in range(start, size, LOAD_CHUNK):
                    await adapter.store_many(
                        [
                            {
                                "session_id": f"{run_id}-s{j // WINDOW}",
                                "turn_id": j % WINDOW,
                                "content": _CONTENT.format(j),
                            }
                            for j in range(at, min(size, at + LOAD_CHUNK))
                        ]
                    )

            await series.grow(size, size - loaded, load(), "sessions (store_many)")
            loaded = size
            series.at(size)
            sessions = size // WINDOW

            def sid(i: int, sessions: int = sessions) -> str:
                return f"{run_id}-s{random.Random(i).randrange(sessions)}"

            async def store(i: int) -> int:
                await adapter.store(
                    {"session_id": sid(i), "turn_id": 100 + i, "content": _CONTENT.format(i)}
                )
                return 1

            async def retrieve(i: int) -> int:
                found = await adapter.retrieve(f"session:{sid(i)}:turns:{i % WINDOW}")
                return 1 if found else 0

            async def search(i: int) -> int:
                return len(await adapter.search({"session_id": sid(i), "limit": WINDOW}))

            async def store_many(i: int) -> int:
                turns = [
                    {
                        "session_id": sid(i * 100 + k % 100),
                        "turn_id": 10_000_000 + i * BATCH + k,
                        "content": _CONTENT.format(k),
                    }
                    for k in range(BATCH)
                ]
                return len(await adapter.store_many(turns))

            few = max(5, calls // 6)
            for name, meta, call, n in (
                # Reads first: the writes then push turns out of the sessions they touch.
                ("retrieve", ("read", "turns", "retrieve one turn of a session"), retrieve, calls),
                ("search", ("read", "turns", "the 10 newest turns of a session"), search, calls),
                ("store", ("write", "turns", "store a turn into a full session"), store, calls),
                (
                    "store_many",
                    ("write", "turns", f"store_many of {BATCH:,} turns over 100 sessions"),
                    store_many,
                    few,
                ),
            ):
                await _measured(client, series, size, name, meta, call, n, min(warmup, n))
    finally:
        await adapter.disconnect()


async def _window(
    url: str,
    client: aioredis.Redis,
    series: sk.Series,
    sizes: list[int],
    run_id: str,
    calls: int,
    warmup: int,
) -> None:
    sid = f"{run_id}-w"
    key = f"session:{sid}:turns"
    loaded = 0
    slow = aioredis.Redis.from_url(url, socket_timeout=120)
    try:
        for size in sizes:

            async def load(start: int = loaded, size: int = size) -> None:
                # Raw LPUSH of the adapter's own encoding: the load is setup, not a path.
                for at in range(start, size, LOAD_CHUNK):
                    payloads = [
                        encode_turn(sid, j, _CONTENT.format(j), None, None)[1]
                        for j in range(at, min(size, at + LOAD_CHUNK))
                    ]
                    await client.lpush(key, *payloads)

            await series.grow(size, size - loaded, load(), "one window (raw LPUSH)")
            loaded = size
            series.at(size)
            adapter = RedisAdapter({"url": url, "window_size": size, "socket_timeout": 60.0})
            await adapter.connect()
            try:
                await _window_paths(adapter, slow, client, series, size, sid, calls, warmup)
            finally:
                await adapter.disconnect()
            await client.ltrim(key, 0, size - 1)
    finally:
        await slow.aclose()


async def _window_paths(
    adapter: RedisAdapter,
    slow: aioredis.Redis,
    client: aioredis.Redis,
    series: sk.Series,
    size: int,
    sid: str,
    calls: int,
    warmup: int,
) -> None:
    """The paths of the one-session shape, at one size (the window is ``size``)."""
    key = f"session:{sid}:turns"

    async def store_w(i: int) -> int:
        await adapter.store(
            {"session_id": sid, "turn_id": 10_000_000 + i, "content": _CONTENT.format(i)}
        )
        return 1

    async def search_w(i: int) -> int:
        return len(await adapter.search({"session_id": sid, "limit": 10}))

    async def retrieve_w(i: int) -> int:
        turn = random.Random(i).randrange(size)
        return 1 if await adapter.retrieve(f"session:{sid}:turns:{turn}") else 0

    def batch(i: int, base: int) -> list[dict[str, Any]]:
        return [
            {"session_id": sid, "turn_id": base + i * BATCH + k, "content": _CONTENT.format(k)}
            for k in range(BATCH)
        ]

    async def store_many_w(i: int) -> int:
        return len(await adapter.store_many(batch(i, 20_000_000)))

    async def store_many_w_old(i: int) -> int:
        payloads = [
            encode_turn(sid, t["turn_id"], t["content"], None, None)[1]
            for t in batch(i, 30_000_000)
        ]
        await slow.eval(OLD_PUSH_SCRIPT, 1, key, size, 86400, len(payloads), *payloads)
        return len(payloads)

    few = max(5, calls // 6)
    # Reads first: the writes then push the oldest turns out of the window.
    plan: list[tuple[str, tuple[str, str, str], sk.Call, int]] = [
        ("search_w", ("read", "turns", "10 newest turns of the N-turn window"), search_w, calls),
        (
            "retrieve_w",
            ("read", "turns", "retrieve one turn of the N-turn window"),
            retrieve_w,
            few,
        ),
        (
            "store_many_w (before fix)",
            (
                "write",
                "turns",
                f"store_many of {BATCH:,} turns into the N-turn window, the script before issue 20",
            ),
            store_many_w_old,
            few,
        ),
        ("store_w", ("write", "turns", "store a turn into the N-turn window"), store_w, calls),
        (
            "store_many_w",
            ("write", "turns", f"store_many of {BATCH:,} turns into the N-turn window"),
            store_many_w,
            few,
        ),
    ]
    for name, meta, call, n in plan:
        await _measured(client, series, size, name, meta, call, n, min(warmup, n, 3))


async def _evidence(client: aioredis.Redis, series: sk.Series, run_id: str) -> None:
    """The server's µs per command of each path at each size, as a table."""
    lines = ["path            size       server us/call (eval | lrange)   client p50 ms"]
    for name, path in series.paths.items():
        for p in path.points:
            server = p.get("server_us", {})
            lines.append(
                f"{name:<15} {p['size']:>9,}   "
                f"{server.get('eval', float('nan')):>12.1f} | "
                f"{server.get('lrange', float('nan')):>10.1f}        {p['p50_ms']:.3f}"
            )
    series.note_evidence(
        "Redis: server time per command (INFO commandstats)", series.sizes[-1], "\n".join(lines)
    )
