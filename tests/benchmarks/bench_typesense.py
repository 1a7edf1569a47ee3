"""Benchmark: TypesenseAdapter against raw httpx on the same server, in the same run.

Measures, over a collection of 10,000 facts (2,000 with ``--quick``):

* ``store_many`` throughput (docs/s) against a raw JSONL import of the same documents;
* search latency p50/p95/p99 (ms) and sequential searches/s, typo queries with a session filter;
* concurrent searches/s (8 tasks);
* single ``store`` and ``retrieve`` latency.

Each figure is the median of 5 repetitions after a warm-up. Nothing is asserted. Run from the
repository root after ``mas-devstack up``::

    uv run python tests/benchmarks/bench_typesense.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from mas_storage import load_stack_outputs
from mas_storage_typesense import TypesenseAdapter, default_schema

REPEATS = 5
CONCURRENCY = 8
_VOCABULARY = (
    "user prefers dark mode light theme coffee tea morning evening meeting project deadline "
    "python rust travel paris berlin music jazz running cycling vegetarian allergy peanuts "
    "birthday march april manager team remote office budget report weekly monday friday"
)
WORDS = _VOCABULARY.split()
TYPES = ("preference", "fact", "event", "habit", "goal")


def make_docs(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` facts of 8-16 words, 50 sessions, 5 fact types, with fresh ids."""
    rng = random.Random(seed)
    base = 1_700_000_000_000
    return [
        {
            "id": uuid.uuid4().hex,
            "content": " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))),
            "session_id": f"session-{i % 50}",
            "fact_type": TYPES[i % len(TYPES)],
            "confidence": round(rng.random(), 3),
            "created_at": base + i,
        }
        for i in range(n)
    ]


def make_queries(n: int, seed: int) -> list[dict[str, Any]]:
    """Two-word queries, one in three with a typo, each filtered on a session."""
    rng = random.Random(seed)
    queries = []
    for i in range(n):
        words = [rng.choice(WORDS), rng.choice(WORDS)]
        if i % 3 == 0 and len(words[0]) > 3:
            words[0] = words[0] + words[0][-1]  # "darkk"
        queries.append({"q": " ".join(words), "session": f"session-{rng.randrange(50)}"})
    return queries


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def latency_summary(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "p50_ms": pct(ms, 50),
        "p95_ms": pct(ms, 95),
        "p99_ms": pct(ms, 99),
        "ops_s": len(ms) / (sum(ms) / 1000),
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


async def timed_each(calls: list[Callable[[], Awaitable[Any]]]) -> list[float]:
    out = []
    for call in calls:
        start = time.perf_counter()
        await call()
        out.append(time.perf_counter() - start)
    return out


async def throughput(calls: list[Callable[[], Awaitable[Any]]], workers: int) -> float:
    """Calls per second with ``workers`` tasks draining the list."""
    queue = list(reversed(calls))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return len(calls) / (time.perf_counter() - start)


class Raw:
    """The raw-httpx baseline: the same requests and the same JSON parsing, no adapter."""

    def __init__(self, client: httpx.AsyncClient, collection: str) -> None:
        self.client = client
        self.docs = f"/collections/{collection}/documents"

    async def import_(self, docs: list[dict[str, Any]]) -> None:
        for start in range(0, len(docs), 2500):
            body = "\n".join(json.dumps(d) for d in docs[start : start + 2500])
            response = await self.client.post(
                f"{self.docs}/import", params={"action": "upsert"}, content=body.encode()
            )
            response.raise_for_status()
            results = [json.loads(line) for line in response.text.splitlines()]
            assert all(r["success"] for r in results)

    async def search(self, q: str, session: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"{self.docs}/search",
            params={
                "q": q,
                "query_by": "content",
                "filter_by": f"session_id:=`{session}`",
                "per_page": 10,
            },
        )
        response.raise_for_status()
        return [hit["document"] for hit in response.json()["hits"]]

    async def store(self, doc: dict[str, Any]) -> None:
        response = await self.client.post(self.docs, content=json.dumps(doc))
        response.raise_for_status()

    async def retrieve(self, doc_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{self.docs}/{doc_id}")
        response.raise_for_status()
        doc: dict[str, Any] = response.json()
        return doc


async def run(outputs: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Measure and return the figures (see the module docstring)."""
    n_docs = 2_000 if quick else 10_000
    n_searches = 100 if quick else 500
    url, key = outputs["typesense_url"], outputs["typesense_api_key"]
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    made: list[str] = []
    client = httpx.AsyncClient(
        base_url=url, headers={"X-TYPESENSE-API-KEY": key}, timeout=120, trust_env=False
    )

    async def fresh_collection(tag: str) -> str:
        name = f"{prefix}_{tag}"
        made.append(name)
        (await client.post("/collections", json=default_schema(name))).raise_for_status()
        return name

    async def adapter_on(name: str) -> TypesenseAdapter:
        adapter = TypesenseAdapter({"url": url, "api_key": key, "collection_name": name})
        await adapter.connect()
        return adapter

    try:
        # -- store_many vs raw import: a fresh collection per repetition, warm-up first --------
        adapter_rates, raw_rates = [], []
        for rep in range(REPEATS + 1):
            docs = make_docs(n_docs, seed=rep)
            name = await fresh_collection(f"a{rep}")
            adapter = await adapter_on(name)
            last_ids = [d["id"] for d in docs]
            start = time.perf_counter()
            await adapter.store_many(docs)
            rate = n_docs / (time.perf_counter() - start)
            await adapter.disconnect()
            raw_name = await fresh_collection(f"r{rep}")
            raw_docs = make_docs(n_docs, seed=rep)
            start = time.perf_counter()
            await Raw(client, raw_name).import_(raw_docs)
            raw_rate = n_docs / (time.perf_counter() - start)
            if rep:  # rep 0 is the warm-up
                adapter_rates.append(rate)
                raw_rates.append(raw_rate)
        store_many = {
            "adapter": {"docs_s": statistics.median(adapter_rates)},
            "raw": {"docs_s": statistics.median(raw_rates)},
        }
        store_many["ratio"] = {
            "docs_s": store_many["adapter"]["docs_s"] / store_many["raw"]["docs_s"]
        }

        # -- search on the last adapter collection (n_docs facts) ---------------------------
        adapter = await adapter_on(made[-2])
        raw = Raw(client, made[-2])
        queries = make_queries(n_searches, seed=42)
        adapter_calls = [
            (
                lambda q=q: adapter.search(
                    {"q": q["q"], "filters": {"session_id": q["session"]}, "limit": 10}
                )
            )
            for q in queries
        ]
        raw_calls = [(lambda q=q: raw.search(q["q"], q["session"])) for q in queries]
        await timed_each(adapter_calls[:50])  # warm-up
        await timed_each(raw_calls[:50])
        a_lat, r_lat, a_thr, r_thr = [], [], [], []
        for _ in range(REPEATS):
            a_lat.append(latency_summary(await timed_each(adapter_calls)))
            r_lat.append(latency_summary(await timed_each(raw_calls)))
            a_thr.append(await throughput(adapter_calls, CONCURRENCY))
            r_thr.append(await throughput(raw_calls, CONCURRENCY))
        search = {"adapter": median_of(a_lat), "raw": median_of(r_lat)}
        search["ratio"] = {k: search["adapter"][k] / search["raw"][k] for k in search["raw"]}
        search_concurrent = {
            "adapter": {"ops_s": statistics.median(a_thr)},
            "raw": {"ops_s": statistics.median(r_thr)},
            "workers": CONCURRENCY,
        }
        search_concurrent["ratio"] = {
            "ops_s": search_concurrent["adapter"]["ops_s"] / search_concurrent["raw"]["ops_s"]
        }

        # -- single store and retrieve ------------------------------------------------------
        singles: dict[str, Any] = {}
        for op in ("store", "retrieve"):
            a_runs, r_runs = [], []
            for rep in range(REPEATS + 1):
                docs = make_docs(100, seed=1000 + rep)
                if op == "store":
                    a = [(lambda d=d: adapter.store(d)) for d in docs]
                    r = [(lambda d=d: raw.store({**d, "id": d["id"] + "r"})) for d in docs]
                else:
                    ids = random.Random(rep).sample(last_ids, 100)
                    a = [(lambda i=i: adapter.retrieve(i)) for i in ids]
                    r = [(lambda i=i: raw.retrieve(i)) for i in ids]
                a_s, r_s = await timed_each(a), await timed_each(r)
                if rep:
                    a_runs.append(latency_summary(a_s))
                    r_runs.append(latency_summary(r_s))
            singles[op] = {"adapter": median_of(a_runs), "raw": median_of(r_runs)}
            singles[op]["ratio"] = {
                k: singles[op]["adapter"][k] / singles[op]["raw"][k] for k in singles[op]["raw"]
            }
        await adapter.disconnect()
        return {
            "documents": n_docs,
            "searches_per_repetition": n_searches,
            "repetitions": REPEATS,
            "store_many": store_many,
            "search": search,
            "search_concurrent": search_concurrent,
            **singles,
        }
    finally:
        for name in made:
            await client.delete(f"/collections/{name}")
        await client.aclose()


def _print(results: dict[str, Any]) -> None:
    print(
        f"Typesense: {results['documents']} documents, {results['searches_per_repetition']} "
        f"searches per repetition, median of {results['repetitions']} repetitions"
    )
    print(f"{'operation':<22}{'figure':<10}{'adapter':>12}{'raw httpx':>12}{'ratio':>8}")
    rows = [("store_many", "docs_s"), ("search_concurrent", "ops_s")]
    rows += [
        (op, f) for op in ("search", "store", "retrieve") for f in ("p50_ms", "p95_ms", "p99_ms")
    ]
    rows += [("search", "ops_s")]
    for op, figure in rows:
        entry = results[op]
        print(
            f"{op:<22}{figure:<10}{entry['adapter'][figure]:>12.2f}{entry['raw'][figure]:>12.2f}"
            f"{entry['ratio'][figure]:>8.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 documents, fewer searches")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    results = asyncio.run(run(load_stack_outputs(), quick=args.quick))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print(results)


if __name__ == "__main__":
    main()
