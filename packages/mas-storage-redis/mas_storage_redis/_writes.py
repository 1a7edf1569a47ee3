"""Every write of the turn cache: one script, sent to one server or to a Redis Cluster.

**The script** (:data:`PUSH_SCRIPT`) runs atomically on the server for any number of sessions:
it refuses a key that holds something other than a list before touching anything, then per
session removes entries identical to the new ones (a replayed write keeps one copy), pushes
them, trims to the window and sets the TTL. One ``EVAL`` per write, whatever the batch size.

**On one server** a batch is one ``EVAL``: all its sessions, all or nothing.

**On a Redis Cluster** a script may only touch keys of one hash slot. A session is one key, so
every single write is one ``EVAL`` routed by redis-py to the primary of its slot (following
``MOVED`` and ``ASK``). A batch is grouped by slot, one ``EVAL`` per slot group, sent through
redis-py's cluster pipeline: one round trip per node, the nodes concurrently. Each session's
turns stay all or nothing (one slot group); the batch as a whole is atomic per slot only, so a
key of the wrong type anywhere is looked for first (``TYPE`` of every key, one round trip per
node): such a batch is refused before anything is written, as on one server.

**WAIT** (``wait_replicas``): Redis replicates asynchronously, so a primary that fails right
after acknowledging a write can take it along when its replica is promoted. With
``wait_replicas`` = *n*, each write is followed by ``WAIT n timeout`` **on the same
connection**, in the same round trip (WAIT counts the replicas that have every write its own
connection made); a write confirmed by fewer than *n* replicas within ``wait_timeout`` raises
:class:`~mas_storage.StorageTimeoutError`: the primary applied it, but it is not acknowledged
(retry it: every write is idempotent). On a cluster the write and its ``WAIT`` go to the slot's
primary as one pipeline on one of its connections (redis-py's ``ClusterNode``); a redirection
or a lost connection is handed to redis-py's own path (a plain ``EVAL``, which follows it and
refreshes the topology), then the write is sent again with its ``WAIT``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster

from mas_storage import StorageConnectionError, StorageDataError, StorageTimeoutError

__all__ = ["PUSH_SCRIPT", "ScriptCall", "Wait", "push", "script_call"]

#: Payloads of one key de-duplicated by one LREM each; more are checked in one LRANGE pass.
_LREM_UP_TO = 8
#: Every write, one atomic script run (EVAL) for any number of sessions. KEYS are the session
#: lists; ARGV is ``window, ttl, n_1 .. n_k, payloads of key 1 .. payloads of key k`` (each
#: key's payloads oldest first). It first refuses, before writing anything, a key that holds
#: something other than a list (a MULTI/EXEC would apply the other commands and half-write).
#: Then, per key: drop entries identical to a payload (a replayed write, e.g. a retry after a
#: lost reply, keeps one copy), LPUSH the payloads in chunks (Lua's unpack() is bounded), LTRIM
#: to the window, EXPIRE. One command per call instead of 3 + one LREM per turn: measured in
#: ``tests/benchmarks/bench_redis.py``. EVAL, not EVALSHA: Redis caches the compiled script by
#: its SHA1 anyway, and a restarted server needs no SCRIPT LOAD.
#:
#: The de-duplication stays O(window) per key, whatever the batch: up to
#: :data:`_LREM_UP_TO` payloads it is one ``LREM`` each (each scans the list in place); beyond,
#: one ``LRANGE`` of the list is checked against a Lua set of the payloads, and the list is
#: rebuilt without the duplicates only when there are some. One LREM per payload made a batch
#: of k turns into a full window cost k x window: 1,000 turns into a 16,000-turn window held
#: the single-threaded server for seconds (``scripts/bench --scaling``, ``store_many_w``).
PUSH_SCRIPT = """
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
  if last - first < LREM_UP_TO then
    for i = first, last do
      redis.call('LREM', key, 0, ARGV[i])
    end
  else
    local new = {}
    for i = first, last do
      new[ARGV[i]] = true
    end
    local kept, dropped = {}, false
    for _, item in ipairs(redis.call('LRANGE', key, 0, -1)) do
      if new[item] then dropped = true else kept[#kept + 1] = item end
    end
    if dropped then
      redis.call('DEL', key)
      for i = 1, #kept, 1000 do
        redis.call('RPUSH', key, unpack(kept, i, math.min(i + 999, #kept)))
      end
    end
  end
  for i = first, last, 1000 do
    redis.call('LPUSH', key, unpack(ARGV, i, math.min(i + 999, last)))
  end
  redis.call('LTRIM', key, 0, window - 1)
  redis.call('EXPIRE', key, ttl)
  first = last + 1
end
return nkeys
""".replace("LREM_UP_TO", str(_LREM_UP_TO))

#: Errors after which a cluster write with WAIT is handed to redis-py's own path: it follows
#: the redirection or refreshes the topology, then the write is sent again with its WAIT.
_REROUTE = (rx.MovedError, rx.AskError, rx.TryAgainError, rx.ClusterDownError, rx.ConnectionError)
_LIST_TYPES = (b"list", b"none", "list", "none")


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One run of :data:`PUSH_SCRIPT`: its keys (one hash slot on a cluster) and its ARGV."""

    keys: tuple[str, ...]
    argv: tuple[Any, ...]

    def command(self) -> tuple[Any, ...]:
        """The ``EVAL`` command's arguments."""
        return ("EVAL", PUSH_SCRIPT, len(self.keys), *self.keys, *self.argv)


@dataclass(frozen=True, slots=True)
class Wait:
    """``WAIT replicas timeout``: how many replicas must confirm a write, and how long for."""

    replicas: int
    timeout: float

    @property
    def timeout_ms(self) -> int:
        return max(1, round(self.timeout * 1000))

    def check(self, confirmed: Any) -> None:
        """Raise :class:`StorageTimeoutError` when fewer replicas than asked confirmed."""
        if not isinstance(confirmed, int) or confirmed < self.replicas:
            raise StorageTimeoutError(
                f"only {confirmed} of {self.replicas} replica(s) confirmed the write within "
                f"{self.timeout:g} s (WAIT): it is applied on the primary but not acknowledged; "
                "retry it (writes are idempotent)"
            )


def script_call(groups: Mapping[str, Sequence[str]], window: int, ttl: int) -> ScriptCall:
    """The script run that pushes ``groups`` (key -> payloads, oldest first), each cut to the
    ``window`` most recent (older turns would be trimmed at once: they are not sent)."""
    counts: list[int] = []
    sent: list[str] = []
    for payloads in groups.values():
        if len(payloads) > window:
            payloads = payloads[-window:]
        counts.append(len(payloads))
        sent.extend(payloads)
    return ScriptCall(tuple(groups), (window, ttl, *counts, *sent))


def by_slot(
    client: RedisCluster, groups: Mapping[str, Sequence[str]]
) -> list[dict[str, Sequence[str]]]:
    """``groups`` split by hash slot (a session id's ``{...}`` is a hash tag, as Redis says)."""
    slots: dict[int, dict[str, Sequence[str]]] = {}
    for key, payloads in groups.items():
        slots.setdefault(client.keyslot(key), {})[key] = payloads
    return list(slots.values())


async def push(
    client: aioredis.Redis | RedisCluster,
    groups: Mapping[str, Sequence[str]],
    window: int,
    ttl: int,
    wait: Wait | None,
) -> None:
    """Write ``groups`` (key -> payloads, oldest first) to one server or a cluster."""
    if isinstance(client, RedisCluster):
        calls = [script_call(part, window, ttl) for part in by_slot(client, groups)]
        if len(calls) > 1:
            await _refuse_wrong_types(client, [key for call in calls for key in call.keys])
        if wait is not None:
            await _cluster_push_wait(client, calls, wait)
        elif len(calls) == 1:
            await client.execute_command(*calls[0].command())
        else:
            batch = client.pipeline(transaction=False)
            for call in calls:
                batch.execute_command(*call.command())
            await batch.execute()
        return
    call = script_call(groups, window, ttl)
    if wait is None:
        await client.eval(PUSH_SCRIPT, len(call.keys), *call.keys, *call.argv)
        return
    pipe = client.pipeline(transaction=False)  # one connection: WAIT counts its writes
    pipe.eval(PUSH_SCRIPT, len(call.keys), *call.keys, *call.argv)
    pipe.wait(wait.replicas, wait.timeout_ms)
    _, confirmed = await pipe.execute()
    wait.check(confirmed)


async def _refuse_wrong_types(client: RedisCluster, keys: Iterable[str]) -> None:
    """A batch over several slots is not atomic as a whole: refuse it, before writing, when a
    key holds something other than a list (each slot's script checks again, atomically)."""
    keys = list(keys)
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    for key, kind in zip(keys, await pipe.execute(), strict=True):
        if kind not in _LIST_TYPES:
            name = kind.decode() if isinstance(kind, bytes) else kind
            raise StorageDataError(
                f"a session key holds a value that is not a list: {key} holds a {name}; "
                "nothing of the batch was written"
            )


async def _cluster_push_wait(client: RedisCluster, calls: list[ScriptCall], wait: Wait) -> None:
    """Each slot group's EVAL, then WAIT, on one connection to its primary (see the module
    docstring); a node's groups share one pipeline and one WAIT, the nodes concurrently."""
    pending = calls
    attempts = 1 + max(1, client.retry.get_retries())
    for _ in range(attempts):
        await client.initialize()  # a no-op unless redis-py marked its topology stale
        by_node: dict[str, tuple[ClusterNode, list[ScriptCall]]] = {}
        for call in pending:
            node = client.get_node_from_key(call.keys[0])
            if node is None:  # pragma: no cover - only replicas may be missing
                raise StorageConnectionError(f"no primary serves the slot of {call.keys[0]}")
            by_node.setdefault(node.name, (node, []))[1].append(call)
        redo = await asyncio.gather(*(_node_push_wait(n, cs, wait) for n, cs in by_node.values()))
        pending = [call for calls_left in redo for call in calls_left]
        if not pending:
            return
        for call in pending:  # redis-py's path: follows MOVED/ASK, refreshes the topology
            await client.execute_command(*call.command())
    raise StorageConnectionError(
        f"the cluster kept redirecting {len(pending)} write(s) after {attempts} attempts"
    )


async def _node_push_wait(
    node: ClusterNode, calls: list[ScriptCall], wait: Wait
) -> list[ScriptCall]:
    """EVAL each call then WAIT, pipelined on one of ``node``'s connections. Returns the calls
    to send again (redirected, or their connection lost); raises on any other error and when
    the replicas do not confirm the writes applied here."""
    commands = [PipelineCommand(i, *call.command()) for i, call in enumerate(calls)]
    commands.append(PipelineCommand(len(calls), "WAIT", wait.replicas, wait.timeout_ms))
    try:
        await node.execute_pipeline(commands)
    except rx.ConnectionError:
        return calls
    redo: list[ScriptCall] = []
    for call, command in zip(calls, commands, strict=False):
        result = command.result
        if isinstance(result, _REROUTE):
            redo.append(call)
        elif isinstance(result, Exception):
            raise result
    if len(redo) < len(calls):  # writes applied on this connection: WAIT covers them
        confirmed = commands[-1].result
        if isinstance(confirmed, Exception):
            raise confirmed
        wait.check(confirmed)
    return redo
