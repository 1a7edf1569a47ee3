"""How the TypesenseAdapter's paths cost as the collection grows (10^3 .. 10^6 facts).

The collection (the adapter's default schema, a fresh ``scale_<hex>`` collection dropped at
the end) holds N facts of 8 to 16 words from a 37-word vocabulary: 90 % in sessions of 100
facts, 10 % in one hot session of N/10. A two-word query therefore matches a fixed share of
all documents, and the unfiltered ``search`` ranks hits that grow with N: an inverted index
promises O(hits), not O(1). The filtered searches narrow to one session: their hits stay
100 (or N/10 for the hot session) while the collection grows.

Paths: ``store`` (one document), ``store_many`` (1,000 per import), ``retrieve`` (a random
id), ``search`` (two words, no filter), ``search_session`` (two words, a 100-fact session),
``search_hot`` (two words, the hot session), ``search_session_all`` (``q=*`` in a
100-fact session: a filter alone).

Evidence: Typesense reports its own ``search_time_ms`` with every search; its median per
path and size is recorded as ``server_ms`` with ``found`` (the hits it ranked).
"""

from __future__ import annotations

import random
import statistics
import uuid
from typing import Any

import httpx
import scalekit as sk
from bench_typesense import WORDS
from benchkit import raw_verify

from mas_storage_typesense import TypesenseAdapter, default_schema

SESSION = 100
HOT = "hot"
BATCH = 1_000
LOAD_CHUNK = 10_000
_WORDS = WORDS  # the vocabulary of bench_typesense.py
_TYPES = ("preference", "fact", "event", "habit", "goal")
NOTES = [
    "The server time in brackets is Typesense's own search_time_ms (median; it reports "
    "whole milliseconds, so 0 below 1 ms); `found` in scaling.json is the number of hits it "
    "ranked.",
    "**search (no filter) is O(hits).** Every document holding the query's words is ranked: "
    "with this small vocabulary `found` grows with N, and so does the server's time. Typesense "
    "does not pre-sort posting lists, so a frequent word means many documents to process "
    "(its maintainers in typesense/typesense#575); a text index promises no better.",
    "**search_session grows although the session holds 100 facts** (`found` stays below "
    "10): the server's time rises with N while a filter alone (`search_session_all`, q=*) "
    "stays flat. Typesense 0.24 evaluates the filter, then walks the posting lists of the "
    "query's words across the whole collection to intersect them with it (filtering is done "
    "before querying, typesense/typesense#858), so the cost follows how often the words occur "
    "in the collection, not in the session. The adapter cannot narrow that without giving up "
    "the server's ranking; bounding it means fewer documents per collection (a collection per "
    "tenant) or rarer words. `search_hot` grows with its hits (N/10 documents in the session).",
]


def _doc(j: int, session_id: str, tag: str) -> dict[str, Any]:
    """Fact ``j``: 8 to 16 words drawn from the vocabulary (seeded by ``j``)."""
    rng = random.Random(j)
    return {
        "id": f"{tag}-{j}",
        "content": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 16))),
        "session_id": session_id,
        "fact_type": _TYPES[j % len(_TYPES)],
        "confidence": round(rng.random(), 3),
        "created_at": 1_700_000_000_000 + j,
    }


async def run(outputs: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Grow the collection size by size and measure every path (see the module docstring)."""
    series = sk.series_for("typesense", quick)
    sizes = series.sizes
    calls, warmup = (10, 2) if quick else (200, 20)
    url, key = outputs["typesense_url"], outputs["typesense_api_key"]
    name = f"scale_{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(
        base_url=url,
        headers={"X-TYPESENSE-API-KEY": key},
        trust_env=False,
        timeout=120,
        verify=raw_verify(outputs),  # the stack's CA, as the adapter trusts it
    ) as client:
        (await client.post("/collections", json=default_schema(name))).raise_for_status()
        adapter = TypesenseAdapter({"url": url, "api_key": key, "collection_name": name})
        await adapter.connect()
        try:
            await _study(adapter, client, series, sizes, calls, warmup)
            version = (await client.get("/debug")).json().get("version")
        finally:
            await adapter.disconnect()
            await client.delete(f"/collections/{name}")
    return sk.scaling_result(
        series,
        version=version,
        shape=(
            "N facts of 8-16 words from a 37-word vocabulary: 90 % in sessions of 100, 10 % "
            "in one hot session of N/10"
        ),
        facts={"collection": name},
        notes=NOTES,
    )


async def _study(
    adapter: TypesenseAdapter,
    client: httpx.AsyncClient,
    series: sk.Series,
    sizes: list[int],
    calls: int,
    warmup: int,
) -> None:
    loaded = 0
    regular = 0  # regular facts loaded: sessions are s0 .. s{regular // SESSION - 1}
    for size in sizes:
        n = size - loaded
        hot_share = n // 10
        docs = [_doc(loaded + k, f"s{(regular + k) // SESSION}", "f") for k in range(n - hot_share)]
        docs += [_doc(loaded + k, HOT, "f") for k in range(n - hot_share, n)]
        regular += n - hot_share

        async def load(docs: list[dict[str, Any]] = docs) -> None:
            for at in range(0, len(docs), LOAD_CHUNK):
                await adapter.store_many(docs[at : at + LOAD_CHUNK])

        await series.grow(size, n, load())
        loaded = size
        series.at(size)
        await _paths(adapter, client, series, size, regular, calls, warmup)


async def _paths(
    adapter: TypesenseAdapter,
    client: httpx.AsyncClient,
    series: sk.Series,
    size: int,
    regular: int,
    calls: int,
    warmup: int,
) -> None:
    sessions = max(1, regular // SESSION)
    docs_path = f"/collections/{adapter.collection_name}/documents"

    async def undo(_: int) -> None:
        # The writes' documents are all in session "w": one delete by filter.
        response = await client.delete(docs_path, params={"filter_by": "session_id:=`w`"})
        response.raise_for_status()

    def words(i: int) -> str:
        rng = random.Random(i)
        return f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}"

    async def store(i: int) -> int:
        await adapter.store(_doc(10_000_000 + i, "w", "w"))
        return 1

    async def store_many(i: int) -> int:
        docs = [_doc(20_000_000 + i * BATCH + k, "w", "w") for k in range(BATCH)]
        return len(await adapter.store_many(docs))

    async def retrieve(i: int) -> int:
        j = random.Random(i).randrange(size)
        return 1 if await adapter.retrieve(f"f-{j}") else 0

    seen: dict[str, list[tuple[float, int]]] = {}

    def searcher(name: str, query: Any) -> sk.Call:
        async def call(i: int) -> int:
            result = await adapter.search(query(i), with_meta=True)
            seen.setdefault(name, []).append((result["search_time_ms"], result["found"]))
            return len(result["hits"])

        return call

    def session(i: int) -> str:
        return f"s{random.Random(i).randrange(sessions)}"

    plan: list[tuple[str, str, str, str, sk.Call, int, bool]] = [
        ("store", "write", "docs", "store one fact", store, calls, True),
        (
            "store_many",
            "write",
            "docs",
            f"store_many of {BATCH:,} facts (one import)",
            store_many,
            max(5, calls // 6),
            True,
        ),
        ("retrieve", "read", "docs", "retrieve a random id", retrieve, calls, False),
        (
            "search",
            "read",
            "hits",
            "two words, no filter, top 10",
            searcher("search", lambda i: {"q": words(i), "limit": 10}),
            calls,
            False,
        ),
        (
            "search_session",
            "read",
            "hits",
            "two words in a 100-fact session, top 10",
            searcher(
                "search_session",
                lambda i: {"q": words(i), "limit": 10, "filters": {"session_id": session(i)}},
            ),
            calls,
            False,
        ),
        (
            "search_hot",
            "read",
            "hits",
            "two words in the N/10-fact session, top 10",
            searcher(
                "search_hot", lambda i: {"q": words(i), "limit": 10, "filters": {"session_id": HOT}}
            ),
            calls,
            False,
        ),
        (
            "search_session_all",
            "read",
            "hits",
            "q=* in a 100-fact session, top 10",
            searcher(
                "search_session_all",
                lambda i: {"q": "*", "limit": 10, "filters": {"session_id": session(i)}},
            ),
            calls,
            False,
        ),
    ]
    for name, kind, unit, what, call, n, with_undo in plan:
        seen.pop(name, None)
        point = await series.measure(
            size,
            name,
            (kind, unit, what),
            call,
            calls=n,
            warmup=warmup,
            undo=undo if with_undo else None,
        )
        if seen.get(name):
            point["server_ms"] = statistics.median(t for t, _ in seen[name])
            point["found"] = statistics.median(f for _, f in seen[name])
    lines = ["path                 size        server search_time_ms (median)   found (median)"]
    for name, path in series.paths.items():
        for p in path.points:
            if "server_ms" in p:
                lines.append(
                    f"{name:<20} {p['size']:>9,}   {p['server_ms']:>10.1f}"
                    f"                    {p['found']:>10,.0f}"
                )
    if size == series.sizes[-1]:
        series.note_evidence("Typesense: the server's own search time", size, "\n".join(lines))
