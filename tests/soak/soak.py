"""The soak (``scripts/soak --minutes N``): a mixed workload through all five adapters at a fixed
rate, with one sample of the process and of every server per minute.

The workload: one adapter per backend, opened once, as an application holds them, with pools
bounded to ``WORKERS`` connections; ``WORKERS`` tasks take operations from a ticker that emits
``--rate`` per second, cycling through :data:`OPS` (turns and facts in PostgreSQL, cached turns
in Redis, points in embedded Qdrant, entities, relationships and traversals in Neo4j, facts in
Typesense: writes, reads, searches and deletes). Every write overwrites or deletes data of a
bounded working set, so what the backends hold does not grow either.

Each sample (minute 0 after a warm-up, then at the end of every minute):

* the process's RSS and open file descriptors (psutil);
* connections per backend as the servers count them: PostgreSQL ``pg_stat_activity``, Redis
  ``CLIENT LIST``, Neo4j ``dbms.listConnections()``, each entry whose peer is a socket of this
  process (the sampler's own connection left out; see :class:`Sampler`); Typesense 0.24
  reports no connection count (``/metrics.json`` and ``/stats.json`` hold memory and request
  rates only), so the server side of the kernel's TCP table is read instead; Qdrant embedded:
  files of its directory this process holds open or mapped;
* the operations done and failed in the minute, their p50 and p99 latency (overall and per
  backend) and how far the ticker fell behind.

Between the minute samples the same figures are read every :data:`PROBE_S` seconds (their
highest value per minute is kept as ``peak``).

**Do not grow** (what ``--check`` and the CI test assert): for open FDs and for each
backend's server-side connections, the value at the end of the last minute is no higher than
the highest value read up to the end of the first steady minute (minute 1). Before minute 0 a
burst of ``WORKERS`` concurrent calls per backend opens every pool to its bound, so that
ceiling is the working set; pools may shrink later (httpx closes connections idle for 5 s) and
grow back up to it, but a leak goes past it. Any failed operation also fails the check.

Writes ``--out`` (JSON: every sample, the settings, the load averages) and prints the table.
Cleans up what it wrote (its PostgreSQL sessions, Redis keys, Neo4j label, Typesense
collection, Qdrant directory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import psycopg
import redis.asyncio as aioredis
from neo4j import AsyncGraphDatabase

from mas_storage import TlsSettings, load_admin_outputs, load_stack_outputs, redact
from mas_storage_neo4j import Neo4jAdapter
from mas_storage_postgres import PostgresAdapter
from mas_storage_qdrant import QdrantAdapter
from mas_storage_redis import RedisAdapter
from mas_storage_typesense import TypesenseAdapter

WORKERS = 4
#: Seconds between two reads of the figures within a minute.
PROBE_S = 5.0
#: Ids, sessions and entities cycle within these bounds: the backends' data stays bounded.
SESSIONS = 20
ITEMS = 400
DIM = 64
COLUMNS = ("postgres", "redis", "neo4j", "typesense", "qdrant")
TITLES = {
    "postgres": "PostgreSQL",
    "redis": "Redis",
    "neo4j": "Neo4j",
    "typesense": "Typesense",
    "qdrant": "Qdrant files",
}


@dataclass
class Minute:
    """What the workers record between two samples."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lag: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)


class Workload:
    """The five adapters and the operations run through them."""

    def __init__(self, outputs: dict[str, Any], run_id: str, scratch: Path) -> None:
        self.run_id = run_id
        self.label = f"Soak_{run_id}"
        self.collection = f"soak_{run_id}"
        self.pg = PostgresAdapter(
            {"url": outputs["postgres_url"], "pool_size": WORKERS, "min_size": WORKERS}
        )
        self.redis = RedisAdapter(
            {"url": outputs["redis_url"], "max_connections": WORKERS, "window_size": 10}
        )
        self.neo4j = Neo4jAdapter(
            {
                "url": outputs["neo4j_url"],
                "user": outputs.get("neo4j_user") or "neo4j",
                "password": outputs["neo4j_password"],
                "max_connection_pool_size": WORKERS,
            }
        )
        self.typesense = TypesenseAdapter(
            {
                "url": outputs["typesense_url"],
                "api_key": outputs["typesense_api_key"],
                "collection_name": self.collection,
                "max_connections": WORKERS,
            }
        )
        qdrant: dict[str, Any] = {"collection_name": self.collection, "vector_size": DIM}
        #: The embedded engine's directory (None in server mode): its files are counted.
        self.qdrant_path: Path | None = None
        if outputs.get("qdrant_url"):
            qdrant.update(url=outputs["qdrant_url"], api_key=outputs.get("qdrant_api_key"))
        else:
            self.qdrant_path = scratch / "qdrant"
            qdrant["path"] = str(self.qdrant_path)
        self.qdrant = QdrantAdapter(qdrant)
        self.adapters = {
            "postgres": self.pg,
            "redis": self.redis,
            "neo4j": self.neo4j,
            "typesense": self.typesense,
            "qdrant": self.qdrant,
        }

    async def open(self) -> None:
        """Connect every adapter; create the entities the relationships join."""
        for adapter in self.adapters.values():
            await adapter.connect()
        await self.neo4j.ensure_schema([self.label])
        await self.neo4j.store_many(
            [
                {"label": self.label, "properties": {"id": f"{self.label}-{i}", "n": i}}
                for i in range(ITEMS)
            ]
        )

    async def close(self) -> None:
        """Remove what the soak wrote, then disconnect every adapter."""
        cleanups: list[Awaitable[Any]] = [
            *(self.pg.clear_session(self._session(k)) for k in range(SESSIONS)),
            *(self.redis.clear_session(self._session(k)) for k in range(SESSIONS)),
            self.neo4j.search(
                {"cypher": f"MATCH (n:`{self.label}`) DETACH DELETE n", "write": True}
            ),
            self.neo4j.search(
                {"cypher": f"DROP CONSTRAINT `mas_{self.label}_id_unique` IF EXISTS", "write": True}
            ),
            self.typesense.drop_collection(),
            self.qdrant.drop_collection(),
        ]
        for cleanup in cleanups:
            try:
                await cleanup
            except Exception as exc:  # clean up what can be; report the rest
                print(f"soak: cleanup failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        for adapter in self.adapters.values():
            await adapter.disconnect()

    def _session(self, k: int) -> str:
        return f"soak-{self.run_id}-{k % SESSIONS}"

    def _vector(self, i: int) -> list[float]:
        rng = random.Random(i)
        return [rng.random() for _ in range(DIM)]

    def ops(self) -> list[tuple[str, Callable[[int], Awaitable[Any]]]]:
        """The cycle of (backend, operation); each takes the operation's sequence number."""
        pg, rd, nj, ts, qd = self.pg, self.redis, self.neo4j, self.typesense, self.qdrant
        s = self._session
        ent = f"{self.label}-"

        async def pg_clear_or_turn(i: int) -> Any:
            if i % 500 == 0:  # sessions restart: the tables stay small
                return await pg.clear_session(s(i // 500))
            return await pg.add_turn(s(i), f"turn {i}", {"role": "user"})

        def entity(i: int) -> dict[str, Any]:
            return {
                "type": "entity",
                "label": self.label,
                "properties": {"id": f"{ent}{i % ITEMS}", "n": i},
            }

        def relation(i: int) -> dict[str, Any]:
            return {
                "type": "relationship",
                "from": f"{ent}{i % ITEMS}",
                "to": f"{ent}{(i * 7 + 1) % ITEMS}",
                "relationship": "KNOWS",
                "from_label": self.label,
                "to_label": self.label,
            }

        def fact(i: int) -> dict[str, Any]:
            return {
                "id": f"f{i % ITEMS}",
                "content": f"the user likes tea number {i % 50}",
                "session_id": s(i),
                "fact_type": "preference",
                "confidence": 0.5,
                "created_at": 1_700_000_000_000 + i,
            }

        def point(i: int) -> dict[str, Any]:
            return {
                "id": i % ITEMS,
                "vector": self._vector(i),
                "session_id": s(i),
                "metadata": {"n": i},
            }

        return [
            ("postgres", pg_clear_or_turn),
            ("postgres", lambda i: pg.get_recent_turns(s(i), limit=10)),
            ("postgres", lambda i: pg.add_fact(s(i), "preference", f"fact {i}", 0.7)),
            ("postgres", lambda i: pg.get_facts(s(i), limit=20)),
            ("redis", lambda i: rd.cache_turn(s(i), i, f"turn {i}", {"role": "user"})),
            ("redis", lambda i: rd.get_cached_turns(s(i))),
            ("redis", lambda i: rd.search({"session_id": s(i), "limit": 5})),
            ("neo4j", lambda i: nj.store(entity(i))),
            ("neo4j", lambda i: nj.store(relation(i))),
            ("neo4j", lambda i: nj.retrieve(f"{ent}{i % ITEMS}")),
            ("neo4j", lambda i: nj.get_neighbors(f"{ent}{i % ITEMS}", depth=2, limit=50)),
            ("typesense", lambda i: ts.upsert(fact(i))),
            (
                "typesense",
                lambda i: ts.search({"q": "tea", "limit": 10, "filters": {"session_id": s(i)}}),
            ),
            ("typesense", lambda i: ts.retrieve(f"f{i % ITEMS}")),
            ("qdrant", lambda i: qd.store(point(i))),
            ("qdrant", lambda i: qd.search({"vector": self._vector(i + 1), "limit": 5})),
            ("qdrant", lambda i: qd.retrieve(str(i % ITEMS))),
        ]


class Sampler:
    """Reads the process's figures and every server's own count of its connections.

    Each server lists its client connections with the peer's address; the connections of this
    process are those whose peer port is one of this process's sockets to that server (psutil).
    So another program using the same servers does not blur the figure, and the sampler's own
    connection is left out. ``total`` (in the JSON) is every client the server lists.
    """

    def __init__(self, outputs: dict[str, Any], workload: Workload) -> None:
        self.outputs = outputs
        self.workload = workload
        self.process = psutil.Process()
        self.pg: psycopg.AsyncConnection[Any] | None = None
        self.redis: aioredis.Redis | None = None
        self.neo4j: Any = None
        self.ports = {
            "postgres": urlsplit(outputs["postgres_url"]).port or 5432,
            "redis": urlsplit(outputs["redis_url"]).port or 6379,
            "neo4j": urlsplit(outputs["neo4j_url"]).port or 7687,
            "typesense": urlsplit(outputs["typesense_url"]).port or 8108,
        }

    async def open(self) -> None:
        self.pg = await psycopg.AsyncConnection.connect(
            self.outputs["postgres_url"], autocommit=True
        )
        # CLIENT LIST is the operator's (the adapter's ACL user may not send CLIENT): the admin
        # outputs' user when there is one.
        redis_url = load_admin_outputs().get("redis_admin_url") or self.outputs["redis_url"]
        self.redis = aioredis.Redis.from_url(redis_url)
        self.neo4j = AsyncGraphDatabase.driver(
            self.outputs["neo4j_url"],
            auth=(self.outputs.get("neo4j_user") or "neo4j", self.outputs["neo4j_password"]),
            max_connection_pool_size=1,
        )

    async def close(self) -> None:
        if self.pg is not None:
            await self.pg.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.neo4j is not None:
            await self.neo4j.close()

    def _mine(self) -> dict[str, set[int]]:
        """This process's local ports, per server port it is connected to."""
        mine: dict[str, set[int]] = {name: set() for name in self.ports}
        by_port = {port: name for name, port in self.ports.items()}
        for c in self.process.net_connections(kind="tcp"):
            if c.raddr and c.raddr.port in by_port:
                mine[by_port[c.raddr.port]].add(c.laddr.port)
        return mine

    async def postgres(self, mine: set[int]) -> tuple[int, int]:
        assert self.pg is not None
        cur = await self.pg.execute(
            "SELECT client_port FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()"
        )
        ports = [row[0] for row in await cur.fetchall()]
        return sum(1 for p in ports if p in mine), len(ports)

    async def redis_clients(self, mine: set[int]) -> tuple[int, int]:
        assert self.redis is not None
        me = await self.redis.client_id()
        ports = [
            int(c["addr"].rsplit(":", 1)[1])
            for c in await self.redis.client_list()
            if int(c["id"]) != me
        ]
        return sum(1 for p in ports if p in mine), len(ports)

    async def neo4j_connections(self, mine: set[int]) -> tuple[int, int]:
        """Bolt connections Neo4j lists, minus the one this query runs on (the sampler's)."""
        async with self.neo4j.session() as session:
            result = await session.run(
                "CALL dbms.listConnections() YIELD clientAddress RETURN clientAddress"
            )
            addresses = [record["clientAddress"] async for record in result]
        ports = [int(a.rsplit(":", 1)[1]) for a in addresses]
        return sum(1 for p in ports if p in mine) - 1, len(ports) - 1

    def typesense_sockets(self, mine: set[int]) -> tuple[int, int]:
        """Typesense 0.24 reports no connection count: the server side of the TCP table
        instead, i.e. sockets on its API port holding a connection (not listening, not
        TIME_WAIT, which holds no descriptor)."""
        ports = [
            c.raddr.port
            for c in psutil.net_connections(kind="tcp")
            if c.laddr
            and c.raddr
            and c.laddr.port == self.ports["typesense"]
            and c.status not in (psutil.CONN_LISTEN, psutil.CONN_TIME_WAIT)
        ]
        return sum(1 for p in ports if p in mine), len(ports)

    def qdrant_files(self) -> int | None:
        """Files of the embedded engine's directory this process holds, open or mapped
        (Qdrant Edge maps its segments into memory rather than keeping them open)."""
        path = self.workload.qdrant_path
        if path is None:
            return None
        root = str(path.resolve())
        held = {f.path for f in self.process.open_files() if f.path.startswith(root)}
        held |= {m.path for m in self.process.memory_maps() if m.path.startswith(root)}
        return len(held)

    async def figures(self) -> dict[str, Any]:
        mine = self._mine()
        counts = {
            "postgres": await self.postgres(mine["postgres"]),
            "redis": await self.redis_clients(mine["redis"]),
            "neo4j": await self.neo4j_connections(mine["neo4j"]),
            "typesense": self.typesense_sockets(mine["typesense"]),
        }
        return {
            "rss_mb": round(self.process.memory_info().rss / 2**20, 1),
            **_rss_split(),
            "fds": self.process.num_fds(),
            "threads": self.process.num_threads(),
            "connections": {
                **{name: ours for name, (ours, _) in counts.items()},
                "qdrant": self.qdrant_files(),
            },
            "server_totals": {name: total for name, (_, total) in counts.items()},
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }


def _rss_split() -> dict[str, float]:
    """RSS as the kernel splits it (Linux): anonymous memory (the heap: Python objects, the
    drivers' buffers) and file-backed pages (mapped files, e.g. Qdrant Edge's segments and
    WAL), in MB; empty elsewhere. Tells a leak from a mapped file being read in."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    wanted = {"RssAnon:": "rss_anon_mb", "RssFile:": "rss_file_mb"}
    out = {}
    for line in lines:
        fields = line.split()
        if fields and fields[0] in wanted:
            out[wanted[fields[0]]] = round(int(fields[1]) / 1024, 1)  # the kernel gives kB
    return out


def _pct(values: list[float], q: float) -> float | None:
    if len(values) < 2:
        return values[0] * 1e3 if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1e3


async def soak(
    outputs: dict[str, Any], minutes: float, rate: float, warmup_s: float
) -> dict[str, Any]:
    """Run the workload for ``minutes`` after a burst and ``warmup_s`` seconds; the result."""
    run_id = uuid.uuid4().hex[:8]
    scratch = Path(tempfile.mkdtemp(prefix="mas-soak-"))
    workload = Workload(outputs, run_id, scratch)
    sampler = Sampler(outputs, workload)
    cycle = workload.ops()
    current = Minute()
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue(maxsize=WORKERS * 50)
    samples: list[dict[str, Any]] = []
    probes: list[dict[str, Any]] = []  # every read of the figures, with its minute
    minute_now = 0
    secrets = [v for k, v in outputs.items() if k.endswith(("password", "api_key")) and v]

    async def run_op(i: int) -> None:
        backend, op = cycle[i % len(cycle)]
        began = time.perf_counter()
        try:
            await op(i)
        except Exception as exc:
            current.errors[backend] += 1
            if len(current.examples) < 5:
                text = redact(f"{backend}: {type(exc).__name__}: {exc}", secrets)
                current.examples.append(text[:300])
        current.latencies[backend].append(time.perf_counter() - began)

    async def worker() -> None:
        while (item := await queue.get()) is not None:
            i, due = item
            current.lag.append(max(0.0, time.perf_counter() - due))
            await run_op(i)

    async def ticker(seconds: float, start_index: int) -> int:
        begin = time.perf_counter()
        i = start_index
        while (due := begin + (i - start_index) / rate) < begin + seconds:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await queue.put((i, due))
            i += 1
        return i

    async def probe() -> None:
        while True:
            await asyncio.sleep(PROBE_S)
            probes.append({"minute": minute_now, **await sampler.figures()})

    async def burst() -> None:
        """``WORKERS`` concurrent calls of every operation, three times: every pool opens
        as many connections as the workload can ever use at once."""
        for _ in range(3):
            for k in range(len(cycle)):
                await asyncio.gather(*(run_op(k + len(cycle) * w) for w in range(WORKERS)))

    def close_minute(minute: int, stats: dict[str, Any]) -> None:
        nonlocal current
        done, current = current, Minute()
        every = [x for values in done.latencies.values() for x in values]
        mine = [p for p in probes if p["minute"] == minute] + [stats]
        row = {
            "minute": minute,
            "ops": len(every),
            "errors": sum(done.errors.values()),
            "error_examples": done.examples,
            "p50_ms": _pct(every, 50),
            "p99_ms": _pct(every, 99),
            "p99_ms_by_backend": {b: _pct(v, 99) for b, v in done.latencies.items()},
            "ops_by_backend": {b: len(v) for b, v in done.latencies.items()},
            "max_lag_ms": max(done.lag, default=0.0) * 1e3,
            **stats,
            "peak": _peak(mine),
        }
        samples.append(row)
        print(_row_text(row), flush=True)

    await workload.open()
    await sampler.open()
    workers = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    prober = asyncio.create_task(probe())
    started = time.time()
    try:
        await burst()
        index = await ticker(warmup_s, 10**6)
        print(_header(), flush=True)
        close_minute(0, await sampler.figures())
        for minute in range(1, int(minutes) + 1):
            minute_now = minute
            index = await ticker(60.0, index)
            close_minute(minute, await sampler.figures())
    finally:
        prober.cancel()
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers, prober, return_exceptions=True)
        await sampler.close()
        await workload.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "run_id": run_id,
        "neo4j_label": workload.label,
        "collection": workload.collection,
        "started_at": started,
        "minutes": minutes,
        "rate_per_s": rate,
        "workers": WORKERS,
        "warmup_s": warmup_s,
        "probe_s": PROBE_S,
        "cycle": [b for b, _ in cycle],
        "samples": samples,
        "check": check(samples),
    }


def _peak(reads: list[dict[str, Any]]) -> dict[str, Any]:
    """The highest FDs and connection counts among ``reads``."""
    peak: dict[str, Any] = {"fds": max(r["fds"] for r in reads), "connections": {}}
    for backend in COLUMNS:
        values = [r["connections"][backend] for r in reads if r["connections"][backend] is not None]
        peak["connections"][backend] = max(values) if values else None
    return peak


def check(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The "do not grow" rule of the module docstring, with the figures it compared."""
    if len(samples) < 3:
        return {"ok": False, "why": ["fewer than two minutes sampled"]}
    steady, last = samples[:2], samples[-1]
    ceiling = _peak([s["peak"] for s in steady])
    why = []
    if last["fds"] > ceiling["fds"]:
        why.append(
            f"open FDs grew: at most {ceiling['fds']} up to minute 1, {last['fds']} at the end"
        )
    for backend in COLUMNS:
        top, end = ceiling["connections"][backend], last["connections"][backend]
        if top is not None and end is not None and end > top:
            why.append(
                f"{backend} connections grew: at most {top} up to minute 1, {end} at the end"
            )
        if end is not None and end < 0:
            why.append(f"{backend} connections could not be counted")
    failed = sum(s["errors"] for s in samples)
    if failed:
        why.append(f"{failed} operations failed")
    return {
        "ok": not why,
        "why": why,
        "ceiling": ceiling,
        "last": {"fds": last["fds"], "connections": last["connections"]},
    }


def _header() -> str:
    cols = [
        "min",
        "ops",
        "err",
        "RSS MB",
        "FDs",
        *(TITLES[c] for c in COLUMNS),
        "p50 ms",
        "p99 ms",
        "max lag ms",
        "load 1m",
    ]
    return " | ".join(cols)


def _row_text(row: dict[str, Any]) -> str:
    conns = [str(row["connections"][c]) for c in COLUMNS]
    p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.2f}"
    p99 = "-" if row["p99_ms"] is None else f"{row['p99_ms']:.1f}"
    return " | ".join(
        [
            str(row["minute"]),
            str(row["ops"]),
            str(row["errors"]),
            f"{row['rss_mb']:.1f}",
            str(row["fds"]),
            *conns,
            p50,
            p99,
            f"{row['max_lag_ms']:.0f}",
            f"{row['loadavg'][0]:.1f}",
        ]
    )


def _rss_cell(row: dict[str, Any]) -> str:
    """RSS, with its anonymous / file-backed split when the kernel gave one."""
    if "rss_anon_mb" in row and "rss_file_mb" in row:
        return f"{row['rss_mb']:.1f} ({row['rss_anon_mb']:.1f} / {row['rss_file_mb']:.1f})"
    return f"{row['rss_mb']:.1f}"


def markdown_table(result: dict[str, Any]) -> str:
    """The samples as a Markdown table (for docs/reliability.md)."""
    head = [
        "minute",
        "ops",
        "errors",
        "RSS MB (anon / file)",
        "open FDs",
        *(f"{TITLES[c]}{'' if c == 'qdrant' else ' conns'}" for c in COLUMNS),
        "p50 ms",
        "p99 ms",
        "load 1/5/15",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["samples"]:
        conns = [
            "-" if row["connections"][c] is None else str(row["connections"][c]) for c in COLUMNS
        ]
        lines.append(
            "| "
            + " | ".join(
                [
                    str(row["minute"]),
                    f"{row['ops']:,}",
                    str(row["errors"]),
                    _rss_cell(row),
                    str(row["fds"]),
                    *conns,
                    "-" if row["p50_ms"] is None else f"{row['p50_ms']:.2f}",
                    "-" if row["p99_ms"] is None else f"{row['p99_ms']:.1f}",
                    " / ".join(f"{x:.1f}" for x in row["loadavg"]),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


async def _until_signalled(work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Run ``work``; SIGTERM or SIGINT cancels it, so its cleanup still runs."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    return await task


def _trust_stack_ca(outputs: dict[str, Any]) -> None:
    """The sampler's bare drivers trust the stack's CA (libpq's PGSSLROOTCERT, OpenSSL's
    SSL_CERT_FILE), as the adapters do through ``tls_ca``; a no-op on a plaintext stack."""
    ca = outputs.get("tls_ca")
    if ca:
        path = TlsSettings.from_config({"tls_ca": ca}).ca_file()
        assert path is not None
        os.environ.setdefault("PGSSLROOTCERT", path)
        os.environ.setdefault("SSL_CERT_FILE", path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30, help="minutes to run (default 30)")
    parser.add_argument("--rate", type=float, default=40.0, help="operations per second")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before minute 0")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table here")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 unless FDs and connections did not grow"
    )
    args = parser.parse_args(argv)
    if args.minutes < 2:
        parser.error("--minutes must be at least 2 (minute 1 is the first steady sample)")
    outputs = load_stack_outputs()
    _trust_stack_ca(outputs)
    # The soak makes and drops a Typesense collection of its own, which the adapters' scoped
    # key may not: the admin key when the admin outputs have one (every other backend runs on
    # the adapters' least-privileged credentials).
    admin_key = load_admin_outputs().get("typesense_admin_api_key")
    if admin_key:
        outputs = {**outputs, "typesense_api_key": admin_key}
    result = asyncio.run(_until_signalled(soak(outputs, args.minutes, args.rate, args.warmup)))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(markdown_table(result) + "\n", encoding="utf-8")
    verdict = result["check"]
    print("\ndo not grow: " + ("ok" if verdict["ok"] else "; ".join(verdict["why"])))
    return 0 if verdict["ok"] or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
