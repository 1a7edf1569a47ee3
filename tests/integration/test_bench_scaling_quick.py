"""``scripts/bench --scaling --quick`` runs for real: the report's shape, and nothing left behind.

One subprocess run of the scaling study at its two small sizes against the session's stack.
Asserts on the report's shape and on the evidence it gathers (plans, profiles, server times),
never on a speed figure or a slope.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from neo4j import AsyncGraphDatabase
from stack_tls import httpx_verify, raw_redis, typesense_admin_key

ROOT = Path(__file__).resolve().parents[2]
MEASURED = ("postgres", "redis", "neo4j", "typesense")
SIZES = [200, 1_000]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def run(stack_outputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``scripts/bench --scaling --quick --out <tmp>`` once: the process, its dir and JSON."""
    out = tmp_path_factory.mktemp("scaling")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "bench"), "--scaling", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    path = out / "scaling.json"
    document = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    return proc, out, document


def test_the_run_succeeds_and_writes_its_files(run: Any) -> None:
    proc, out, document = run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "benchmarks.md",
        "scaling.json",
        "scaling.png",
    ]
    assert document["quick"] is True
    assert len(document["machine"]["loadavg_start"]) == 3


def test_every_path_has_figures_at_both_sizes_and_a_slope(run: Any) -> None:
    _, _, document = run
    backends = document["backends"]
    assert set(backends) == {*MEASURED, "qdrant"}
    for backend in MEASURED:
        result = backends[backend]
        assert "error" not in result, (backend, result.get("error"))
        assert result["sizes"] == SIZES
        assert [x["size"] for x in result["facts"]["loadavg_by_size"]] == SIZES
        assert len(result["paths"]) >= 4, backend
        kinds = {path["kind"] for path in result["paths"].values()}
        assert kinds == {"read", "write"}, backend
        for name, path in result["paths"].items():
            assert [p["size"] for p in path["points"]] == SIZES, (backend, name)
            for point in path["points"]:
                assert 0 < point["p50_ms"] <= point["p95_ms"], (backend, name, point)
                assert point["ops_per_s"] > 0 and point["items_per_s"] >= 0
                assert point["calls"] >= 2
            assert isinstance(path["slope"], float), (backend, name)
            assert path["flag"] is (path["slope"] > 0.25)
        assert sorted({x["size"] for x in result["load"]}) == SIZES
        assert all(x["items_per_s"] > 0 for x in result["load"])
    # Qdrant's figures belong to bench_qdrant.py; --quick says so instead of measuring.
    assert "not in --quick" in backends["qdrant"]["skipped"]


def test_evidence_holds_plans_profiles_and_server_times(run: Any) -> None:
    _, _, document = run
    backends = document["backends"]
    pg = {e["title"]: e["text"] for e in backends["postgres"]["evidence"]}
    plans = [t for title, t in pg.items() if title.startswith("PostgreSQL: get_facts")]
    assert len(plans) == 4  # two statements, with and without the migration
    assert all("actual time=" in t and "Buffers:" in t for t in plans)
    assert any("BEFORE 0004_fact_session_order" in title for title in pg)
    names = set(backends["postgres"]["paths"])
    assert {"get_facts_hot", "get_facts_hot (before 0004)"} <= names
    neo = [
        e["text"] for e in backends["neo4j"]["evidence"] if e["title"].startswith("Neo4j: PROFILE")
    ]
    assert neo and all("dbHits=" in t for t in neo)
    assert any("NodeUniqueIndexSeek" in t for t in neo)
    for name in ("retrieve", "get_neighbors_2"):
        points = backends["neo4j"]["paths"][name]["points"]
        assert all(p["db_hits"] > 0 for p in points), (name, points)
    redis_points = [p for path in backends["redis"]["paths"].values() for p in path["points"]]
    assert all(p["server_us"] for p in redis_points)
    searches = backends["typesense"]["paths"]["search_session"]["points"]
    assert all("server_ms" in p and "found" in p for p in searches)


def test_markdown_holds_the_section_and_the_chart(run: Any) -> None:
    _, out, _ = run
    text = (out / "benchmarks.md").read_text(encoding="utf-8")
    assert "## Scaling: cost as the data grows" in text
    assert "![p50 latency against data size, log-log](scaling.png)" in text
    for title in ("### PostgreSQL", "### Redis", "### Neo4j", "### Typesense", "### Qdrant"):
        assert title in text


async def test_the_run_left_nothing_behind(
    run: Any, stack_outputs: dict[str, Any], stack_admin: dict[str, Any]
) -> None:
    _, _, document = run
    facts = {b: document["backends"][b]["facts"] for b in MEASURED}
    async with await psycopg.AsyncConnection.connect(stack_outputs["postgres_url"]) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (facts["postgres"]["database"],)
        )
        assert await cur.fetchone() == (0,)
    client = raw_redis(stack_admin["redis_admin_url"], stack_outputs)  # SCAN: the operator's
    try:
        prefix = facts["redis"]["key_prefix"]
        assert [k async for k in client.scan_iter(match=f"{prefix}*")] == []
    finally:
        await client.aclose()
    driver = AsyncGraphDatabase.driver(
        stack_outputs["neo4j_url"],
        auth=(stack_outputs.get("neo4j_user") or "neo4j", stack_outputs["neo4j_password"]),
    )
    try:
        label = facts["neo4j"]["label"]
        records, _, _ = await driver.execute_query(f"MATCH (n:`{label}`) RETURN count(n) AS n")
        assert records[0]["n"] == 0
        records, _, _ = await driver.execute_query(
            "SHOW CONSTRAINTS YIELD labelsOrTypes WHERE $label IN labelsOrTypes RETURN count(*)",
            {"label": label},
        )
        assert records[0][0] == 0
    finally:
        await driver.close()
    async with httpx.AsyncClient(
        base_url=stack_outputs["typesense_url"],
        headers={"X-TYPESENSE-API-KEY": typesense_admin_key(stack_outputs)},  # every collection
        trust_env=False,
        verify=httpx_verify(stack_outputs),
    ) as http:
        names = [c["name"] for c in (await http.get("/collections")).json()]
    assert facts["typesense"]["collection"] not in names
