"""Round-trip one real record through every adapter and print what happened.

Run by ``scripts/main`` after ``mas-devstack up``. Adapters come from the registry with their
config from the settings sources (here ``.mas/stack-outputs.json``), exactly as business code
gets them. Each check writes, reads back, searches and deletes, and verifies the backend holds
nothing of it afterwards. Exit status 1 when any backend fails.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mas_storage import StorageError, create_adapter

Check = Callable[[Any, str], Awaitable[str]]


@dataclass
class Row:
    backend: str
    version: str
    ok: bool
    detail: str
    latency_ms: float
    connect_ms: float


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


async def postgres_turn(active: Any, run: str) -> str:
    """L1: a turn into ``active_context``, read back as the session's recent turns."""
    session = f"main-{run}"
    turn_id = await active.add_turn(session, "Hello, I prefer dark mode.", {"role": "user"})
    turns = await active.get_recent_turns(session, limit=5)
    _expect([t["content"] for t in turns] == ["Hello, I prefer dark mode."], "turn read back")
    cleared = await active.clear_session(session)
    _expect(await active.count(session) == 0, "session cleared")
    return f"turn {turn_id} stored, read, cleared ({sum(cleared.values())} rows)"


async def postgres_fact(working: Any, run: str) -> str:
    """L2: a fact into ``working_memory``, found by type and confidence."""
    session = f"main-{run}"
    fact_id = await working.add_fact(session, "preference", "User prefers dark mode", 0.9)
    facts = await working.get_facts(session, fact_type="preference", min_confidence=0.5)
    _expect([f["content"] for f in facts] == ["User prefers dark mode"], "fact read back")
    _expect(await working.delete(str(fact_id)), "fact deleted")
    _expect(await working.retrieve(str(fact_id)) is None, "fact gone")
    return f"fact {fact_id} stored, found by type, deleted"


async def redis_turn(cache: Any, run: str) -> str:
    """L1 cache: a cached turn in the session's window."""
    session = f"main-{run}"
    turn = await cache.cache_turn(session, 1, "Hello, I prefer dark mode.")
    _expect((await cache.retrieve(turn))["content"] == "Hello, I prefer dark mode.", "read")
    _expect(len(await cache.get_cached_turns(session)) == 1, "window holds the turn")
    _expect(await cache.clear_session(session), "session cleared")
    _expect(not await cache.session_exists(session), "session gone")
    return "turn cached, read, windowed, cleared"


async def qdrant_vector(episodes: Any, run: str) -> str:
    """L3 episodic: a vector stored, found as the nearest neighbour, deleted."""
    size = episodes.vector_size
    vector = [math.sin(i + 1.0) for i in range(size)]
    point = await episodes.store(
        {"vector": vector, "content": "User prefers dark mode", "session_id": f"main-{run}"}
    )
    hits = await episodes.search({"vector": vector, "limit": 1, "session_id": f"main-{run}"})
    _expect(bool(hits) and hits[0]["id"] == point, "nearest neighbour is the stored vector")
    score = hits[0]["score"]
    _expect(await episodes.delete(point), "vector deleted")
    _expect(await episodes.retrieve(point) is None, "vector gone")
    return f"vector stored, nearest (score {score:.3f}), deleted"


async def neo4j_graph(graph: Any, run: str) -> str:
    """L3 graph: two entities, a relationship, and a traversal."""
    alice = await graph.store(
        {"type": "entity", "label": "Person", "properties": {"id": f"alice-{run}"}}
    )
    theme = await graph.store(
        {"type": "entity", "label": "Preference", "properties": {"id": f"dark-{run}"}}
    )
    await graph.store(
        {"type": "relationship", "from": alice, "to": theme, "relationship": "PREFERS"}
    )
    near = await graph.get_neighbors(alice, rel_types=["PREFERS"], direction="out")
    _expect([n["id"] for n in near] == [theme], "traversal finds the preference")
    _expect(await graph.delete(alice) and await graph.delete(theme), "entities deleted")
    _expect(await graph.retrieve(alice) is None, "entity gone")
    return "2 entities, 1 relationship, traversal, deleted"


async def typesense_fact(facts: Any, run: str) -> str:
    """L4: an indexed fact found by a typo-tolerant search."""
    doc = await facts.store(
        {
            "content": "User prefers dark mode",
            "session_id": f"main-{run}",
            "fact_type": "preference",
            "confidence": 0.9,
        }
    )
    hits = await facts.search({"q": "darkk mode", "filters": {"session_id": f"main-{run}"}})
    _expect([h["id"] for h in hits] == [doc], "typo-tolerant search finds the fact")
    _expect(await facts.delete(doc), "fact deleted")
    _expect(await facts.retrieve(doc) is None, "fact gone")
    return "fact indexed, found by 'darkk mode', deleted"


#: (kind, label, overrides of the settings sources, check)
CHECKS: list[tuple[str, str, dict[str, Any] | None, Check]] = [
    ("postgres", "postgres (L1 turn)", None, postgres_turn),
    ("postgres", "postgres (L2 fact)", {"table": "working_memory"}, postgres_fact),
    ("redis", "redis (L1 cache)", None, redis_turn),
    ("qdrant", "qdrant (L3 vectors)", None, qdrant_vector),
    ("neo4j", "neo4j (L3 graph)", None, neo4j_graph),
    ("typesense", "typesense (L4 facts)", None, typesense_fact),
]


def _versions() -> dict[str, str]:
    try:
        from mas_devstack import Stack

        return {name: s.version or "?" for name, s in Stack().status().items()}
    except Exception as exc:  # the table is still useful without versions
        print(f"(versions unavailable: {type(exc).__name__})", file=sys.stderr)
        return {}


async def main(only: list[str] | None) -> int:
    run = uuid.uuid4().hex[:8]
    versions = await asyncio.to_thread(_versions)
    rows: list[Row] = []
    for service, label, config, check in CHECKS:
        if only and service not in only:
            continue
        connect_ms = elapsed = 0.0
        try:
            start = time.perf_counter()
            async with create_adapter(service, **(config or {})) as adapter:
                connect_ms = (time.perf_counter() - start) * 1000
                start = time.perf_counter()
                detail = await check(adapter, run)
                elapsed = (time.perf_counter() - start) * 1000
            ok = True
        except (StorageError, AssertionError) as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        rows.append(Row(label, versions.get(service, "?"), ok, detail, elapsed, connect_ms))
    _print(rows)
    return 0 if all(r.ok for r in rows) else 1


def _print(rows: list[Row]) -> None:
    header = ("backend", "version", "round trip", "latency ms", "connect ms", "what was checked")
    table = [header] + [
        (
            r.backend,
            r.version,
            "ok" if r.ok else "FAILED",
            f"{r.latency_ms:.1f}",
            f"{r.connect_ms:.1f}",
            r.detail,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for index, row in enumerate(table):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))
    print(
        f"\n{sum(r.ok for r in rows)} of {len(rows)} round trips ok (latency: every call of the "
        "round trip together; connect: connect() with its checks and schema set-up)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backends", nargs="*", help="only these (postgres, redis, ...)")
    sys.exit(asyncio.run(main(parser.parse_args().backends)))
