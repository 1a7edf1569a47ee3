"""Benchmark: TypesenseAdapter against raw httpx on the same server, in the same run.

Measures, over a collection of 10,000 facts (2,000 with ``--quick``):

* ``store``, ``retrieve`` and ``search`` (two-word typo-tolerant queries filtered on a
  session) latency, sequential ops/s and client CPU per call: the adapter, raw httpx at its
  best (one ``AsyncClient``, keep-alive, ``sniffio`` installed: the ratio baseline) and raw
  aiohttp (one ``ClientSession``: the other client a user might pick), each doing the same
  requests and the same JSON parsing;
* on a cluster (``typesense_nodes`` in the outputs: ``mas-devstack up --topology cluster``),
  the adapter runs with its node list, as a user's would, and talks to the first healthy node
  of it (``typesense_url``, node 0, the leader after ``up``); the raw baselines talk to that
  same node, and ``raw_follower`` (raw httpx to the second node, a follower) shows what the
  Raft group adds to a write that lands on a follower (it forwards it to the leader);
* the CPU seconds of each Typesense server process (``benchkit.ServerCpu``);
* 50 tasks searching through one adapter (and through one raw ``httpx.AsyncClient``);
* ``store_many`` docs/s against a raw JSONL ``/documents/import`` of the same documents in
  the same chunk size, plus (not with ``--quick``) the adapter's docs/s for several import
  batch sizes.

Medians of 5 repetitions after a warm-up (``benchkit``). Collections are ``bench_…`` and
dropped at the end. Run from the repository root after ``mas-devstack up``::

    uv run python tests/benchmarks/bench_typesense.py [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from typing import Any

import aiohttp
import benchkit as bk
import httpx
from benchkit import raw_verify

from mas_storage_typesense import DEFAULT_IMPORT_BATCH_SIZE, TypesenseAdapter, default_schema

TASKS = 50
#: The adapter's import chunk; the raw import uses the same.
CHUNK = DEFAULT_IMPORT_BATCH_SIZE
TARGETS = [
    *bk.ratio_targets(),
    bk.Target(
        "search p95 (Typesense search)", "ops.search.adapter.p95_ms", "<=", 50.0, "ms", "spec"
    ),
    bk.Target(
        "sequential search",
        "ops.search.adapter.ops_per_s",
        ">=",
        100,
        "searches/s",
        "spec (Typesense > 100 searches/s)",
    ),
    bk.Target(
        f"{TASKS} tasks searching",
        "concurrency.adapter_ops_per_s",
        ">=",
        100,
        "searches/s",
        "spec (Typesense > 100 searches/s)",
    ),
    bk.Target("store_many via import", "batch.adapter_per_s", ">=", 5_000, "docs/s", "issue #12"),
    *(
        bk.Target(
            f"{op}: adapter ÷ raw httpx CPU per call",
            f"ops.{op}.cpu_ratio",
            "<=",
            0.5,
            "x",
            "issue #20",
        )
        for op in ("store", "retrieve", "search")
    ),
]
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


class Raw:
    """The raw-httpx baseline: the same requests and the same JSON parsing, no adapter."""

    def __init__(self, client: httpx.AsyncClient, collection: str) -> None:
        self.client = client
        self.docs = f"/collections/{collection}/documents"

    async def import_(self, docs: list[dict[str, Any]], chunk: int) -> None:
        for start in range(0, len(docs), CHUNK):
            body = "\n".join(json.dumps(d) for d in docs[start : start + chunk])
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


class RawAiohttp:
    """The second raw baseline: one ``aiohttp.ClientSession``, the same requests and parsing."""

    def __init__(self, session: aiohttp.ClientSession, collection: str) -> None:
        self.session = session
        self.docs = f"/collections/{collection}/documents"

    async def search(self, q: str, session: str) -> list[dict[str, Any]]:
        params: dict[str, str | int] = {
            "q": q,
            "query_by": "content",
            "filter_by": f"session_id:=`{session}`",
            "per_page": 10,
        }
        async with self.session.get(f"{self.docs}/search", params=params) as response:
            response.raise_for_status()
            return [hit["document"] for hit in (await response.json())["hits"]]

    async def store(self, doc: dict[str, Any]) -> None:
        async with self.session.post(self.docs, data=json.dumps(doc)) as response:
            response.raise_for_status()
            await response.read()

    async def retrieve(self, doc_id: str) -> dict[str, Any]:
        async with self.session.get(f"{self.docs}/{doc_id}") as response:
            response.raise_for_status()
            doc: dict[str, Any] = await response.json()
            return doc


async def run(outputs: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Measure and return the figures (see the module docstring)."""
    n_docs = 2_000 if quick else 10_000
    calls = 100 if quick else 500
    warmup = 30 if quick else 100
    concurrent_calls = 200 if quick else 1_000
    sweep_sizes = [] if quick else [250, 1000, 5000]
    url, key = outputs["typesense_url"], outputs["typesense_api_key"]
    # A cluster: more than one node (a single server's outputs may list itself alone).
    nodes: list[str] = list(outputs.get("typesense_nodes") or [])
    nodes = nodes if len(nodes) > 1 else []
    servers = bk.ServerCpu.of_local_stack("typesense")
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    made: list[str] = []

    def raw_client(base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=base_url,
            headers={"X-TYPESENSE-API-KEY": key},
            timeout=120,
            trust_env=False,
            verify=raw_verify(outputs),  # the stack's CA, as the adapter trusts it
        )

    # The node the adapter talks to: the first healthy one of its order (url, then nodes).
    client = raw_client(url)
    followers = [n for n in nodes if n.rstrip("/") != url.rstrip("/")]
    follower = raw_client(followers[0]) if followers else None
    session = aiohttp.ClientSession(
        base_url=url,
        headers={"X-TYPESENSE-API-KEY": key},
        timeout=aiohttp.ClientTimeout(total=120),
        # The stack's CA, named: SSL_CERT_FILE is set only inside a pytest session.
        connector=aiohttp.TCPConnector(ssl=raw_verify(outputs)),
    )

    async def fresh_collection(tag: str) -> str:
        name = f"{prefix}_{tag}"
        made.append(name)
        (await client.post("/collections", json=default_schema(name))).raise_for_status()
        return name

    async def adapter_on(name: str, **options: Any) -> TypesenseAdapter:
        config = {"url": url, "api_key": key, "collection_name": name, **options}
        adapter = TypesenseAdapter({**config, "nodes": nodes} if nodes else config)
        await adapter.connect()
        return adapter

    try:
        # -- store_many vs raw import: fresh documents; a fresh collection per run (dropped
        # after it), or with --quick one collection per side (creating collections is slow).
        shared: dict[str, str] = {}

        async def collection(side: str, rep: int) -> str:
            if not quick:
                return await fresh_collection(f"{side}{rep}")
            if side not in shared:
                shared[side] = await fresh_collection(f"{side}_shared")
            return shared[side]

        async def drop_unless_shared(name: str) -> None:
            if name not in shared.values():
                await client.delete(f"/collections/{name}")
                made.remove(name)

        async def a_many(rep: int, **options: Any) -> float:
            adapter = await adapter_on(await collection("a", rep), **options)
            try:
                docs = make_docs(n_docs, seed=rep)
                return await bk.rate_of(n_docs, adapter.store_many(docs))
            finally:
                await adapter.disconnect()
                await drop_unless_shared(adapter.collection_name)

        async def r_many(rep: int) -> float:
            name = await collection("r", rep)
            docs = make_docs(n_docs, seed=rep)
            try:
                return await bk.rate_of(n_docs, Raw(client, name).import_(docs, CHUNK))
            finally:
                await drop_unless_shared(name)

        many = await bk.compare_rates({"adapter": a_many, "raw": r_many})
        sizes = await bk.sweep(
            lambda size, rep: a_many(1000 * size + rep, import_batch_size=size),
            sweep_sizes,
            known={CHUNK: many["adapter"]},
        )
        for name in made:
            await client.delete(f"/collections/{name}")
        made.clear()

        # -- single operations on one collection of n_docs facts -----------------------------
        name = await fresh_collection("ops")
        loaded = make_docs(n_docs, seed=42)
        await Raw(client, name).import_(loaded, CHUNK)
        adapter = await adapter_on(name)
        raw = Raw(client, name)
        aio = RawAiohttp(session, name)
        queries = make_queries(200, seed=42)
        a_queries = [
            {"q": q["q"], "filters": {"session_id": q["session"]}, "limit": 10} for q in queries
        ]
        ids = [d["id"] for d in random.Random(1).sample(loaded, 200)]
        new_docs = make_docs(4 * (warmup + 5 * calls), seed=7)
        if follower is not None:  # its node must have the collection before it is read
            await _until_replicated(follower, name, n_docs)

        def a_search(i: int) -> Any:
            return adapter.search(a_queries[i % 200])

        def r_search(i: int) -> Any:
            return raw.search(queries[i % 200]["q"], queries[i % 200]["session"])

        def aio_search(i: int) -> Any:
            return aio.search(queries[i % 200]["q"], queries[i % 200]["session"])

        contenders: dict[str, dict[str, bk.Call]] = {
            "store": {
                "adapter": lambda i: adapter.store(new_docs[4 * i]),
                "raw": lambda i: raw.store(new_docs[4 * i + 1]),
                "raw_aiohttp": lambda i: aio.store(new_docs[4 * i + 2]),
            },
            "retrieve": {
                "adapter": lambda i: adapter.retrieve(ids[i % 200]),
                "raw": lambda i: raw.retrieve(ids[i % 200]),
                "raw_aiohttp": lambda i: aio.retrieve(ids[i % 200]),
            },
            "search": {"adapter": a_search, "raw": r_search, "raw_aiohttp": aio_search},
        }
        if follower is not None:
            on_follower = Raw(follower, name)
            contenders["store"]["raw_follower"] = lambda i: on_follower.store(new_docs[4 * i + 3])
            contenders["retrieve"]["raw_follower"] = lambda i: on_follower.retrieve(ids[i % 200])
            contenders["search"]["raw_follower"] = lambda i: on_follower.search(
                queries[i % 200]["q"], queries[i % 200]["session"]
            )
        label = "httpx.AsyncClient, same request and JSON parsing"
        ops = {}
        for op, group in contenders.items():
            figures = await bk.compare(group, calls=calls, warmup=warmup)
            cpu = {who: fig["cpu_us"] for who, fig in figures.items()}
            ops[op] = bk.op_entry(
                figures,
                label,
                cpu_ratio=bk.ratio(cpu["adapter"], cpu["raw"]),
                cpu_ratio_aiohttp=bk.ratio(cpu["adapter"], cpu["raw_aiohttp"]),
            )
        rates = await bk.compare_concurrent(
            {"adapter": a_search, "raw": r_search}, calls=concurrent_calls, tasks=TASKS
        )
        debug = (await client.get("/debug")).json()
        version = debug.get("version")
        await adapter.disconnect()
        server_cpu = servers.seconds()
    finally:
        for name in made:
            await client.delete(f"/collections/{name}")
        await client.aclose()
        if follower is not None:
            await follower.aclose()
        await session.close()

    cpu_rows = [
        [
            op,
            *(f"{entry[who]['cpu_us']:,.0f}" for who in ("adapter", "raw", "raw_aiohttp")),
            f"{entry['cpu_ratio']:.2f}",
            f"{entry['cpu_ratio_aiohttp']:.2f}",
        ]
        for op, entry in ops.items()
    ]
    return bk.backend_result(
        "typesense",
        version=version,
        raw_driver=f"httpx {httpx.__version__} (second baseline: aiohttp {aiohttp.__version__})",
        ops=ops,
        batch=bk.batch_entry(
            op="store_many",
            unit="docs",
            per_call=n_docs,
            rates=many,
            raw_path=f"JSONL /documents/import (action=upsert), chunks of {CHUNK}",
            batch_size=CHUNK,
            sweep=sizes,
        ),
        concurrency=bk.concurrency_entry(
            op="search", tasks=TASKS, calls=concurrent_calls, rates=rates
        ),
        targets=TARGETS,
        settings={
            "calls": calls,
            "warmup": warmup,
            "documents": n_docs,
            "data_prefix": prefix,
            "topology": f"Raft cluster, {len(nodes)} nodes" if nodes else "one server",
        },
        facts={
            **({"server_cpu_s": server_cpu} if server_cpu else {}),
            # braft's state of the node the adapter and raw talk to: 1 leader, 4 follower.
            **({"raft_state_of_first_node": debug.get("state")} if nodes else {}),
        },
        tables=[
            {
                "title": "Client CPU per call (µs, this process), adapter ÷ each raw client",
                "header": [
                    "operation",
                    "adapter",
                    "raw httpx",
                    "raw aiohttp",
                    "adapter ÷ httpx",
                    "adapter ÷ aiohttp",
                ],
                "rows": cpu_rows,
            }
        ],
        notes=[
            "The adapter sends httpx requests through its aiohttp transport "
            "(`mas_storage_typesense._transport`): httpx's `AsyncClient` and httpcore cost "
            "most of the client CPU per call. `raw_aiohttp` is one `aiohttp.ClientSession` "
            "doing the same requests; its ÷ raw is in ops/s like the others.",
        ],
        topology_notes=[_CLUSTER_NOTE.format(n=len(nodes), first=url)] if nodes else [],
    )


_CLUSTER_NOTE = (
    "Raft cluster of {n} nodes on this machine. The adapter is given every node (`nodes`) and "
    "sends each request to the first healthy one of its order, {first} (node 0: the leader "
    "after `mas-devstack up`; `raft_state_of_first_node` 1 = leader); the raw baselines talk "
    "to that same node, so the ratio is the adapter's cost on the path a user's adapter "
    "takes. A write on the cluster is a Raft log entry: the leader appends it, replicates it "
    "to the followers and answers once a majority (2 of 3) holds it and the leader has applied "
    "it; a write sent to a follower (`raw_follower`) is first forwarded by that follower to "
    "the leader over HTTP, one more hop. Reads are answered by whichever node gets them, from "
    "its own copy (a follower may lag by up to a heartbeat). server_cpu_s: CPU seconds of "
    "each node during the run (its followers apply every write too)."
)


async def _until_replicated(client: httpx.AsyncClient, name: str, count: int) -> None:
    """Wait (30 s at most) until the node behind ``client`` holds ``count`` documents of
    ``name``: a follower applies the leader's log a little later."""
    for _ in range(300):
        response = await client.get(f"/collections/{name}")
        if response.status_code == 200 and response.json().get("num_documents", 0) >= count:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the follower did not catch up with {count} documents of {name}")


if __name__ == "__main__":
    bk.main(run, __doc__, "typesense_api_key")
