"""``scripts/bench --quick`` runs for real: it writes a report of every backend and cleans up.

One subprocess run of the command against the session's stack outputs. Asserts on behaviour
only (files written, parseable, complete; no backend failed; nothing of the run left in any
backend), never on a speed figure.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from neo4j import AsyncGraphDatabase
from stack_tls import raw_redis, typesense_admin_key

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("postgres", "redis", "qdrant", "neo4j", "typesense")
TITLES = ("PostgreSQL", "Redis", "Qdrant", "Neo4j", "Typesense")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def quick_run(stack_outputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Run ``scripts/bench --quick --out <tmp>`` once; its result, output dir and JSON."""
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "bench"), "--quick", "--out", str(out)],
        cwd=ROOT,
        env=os.environ.copy(),  # carries MAS_STACK_OUTPUTS when the session set it
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    document = None
    if (out / "benchmarks.json").is_file():
        document = json.loads((out / "benchmarks.json").read_text(encoding="utf-8"))
    return proc, out, document


def test_quick_run_succeeds_and_writes_three_files(quick_run: Any) -> None:
    proc, out, document = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "benchmarks.json",
        "benchmarks.md",
        "benchmarks.png",
    ]
    assert document is not None


def test_json_holds_every_backend_with_figures(quick_run: Any) -> None:
    _, _, document = quick_run
    assert document["quick"] is True
    assert document["machine"]["cpu_count"] >= 1
    assert len(document["machine"]["loadavg_start"]) == 3
    assert set(document["backends"]) == set(BACKENDS)
    for backend, result in document["backends"].items():
        assert "error" not in result, (backend, result.get("error"))
        for op in ("store", "retrieve", "search"):
            entry = result["ops"][op]
            for who in ("adapter", "raw"):
                figures = entry[who]
                assert figures["ops_per_s"] > 0, (backend, op, who)
                assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
            assert entry["ratio"] == pytest.approx(
                entry["adapter"]["ops_per_s"] / entry["raw"]["ops_per_s"]
            )
        assert result["batch"]["adapter_per_s"] > 0 and result["batch"]["raw_per_s"] > 0
        assert result["concurrency"]["tasks"] == 50
        assert result["concurrency"]["adapter_ops_per_s"] > 0
        assert result["targets"], backend
        assert all(t["met"] in (True, False) for t in result["targets"]), backend
        assert len(result["facts"]["loadavg_end"]) == 3
    assert document["backends"]["postgres"]["facts"]["fsync"] in ("on", "off")


def test_markdown_has_a_section_and_target_table_per_backend(quick_run: Any) -> None:
    _, out, document = quick_run
    text = (out / "benchmarks.md").read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n")
    for title in TITLES:
        assert f"\n## {title}" in text, title
    assert text.count("\n| target | source | goal | measured | met? |") == len(BACKENDS)
    assert "![adapter ÷ raw per operation](benchmarks.png)" in text
    targets = [t for r in document["backends"].values() for t in r["targets"]]
    met = sum(1 for t in targets if t["met"])
    assert f"{met} of {len(targets)} targets met" in text or f"All {met} targets met" in text


def test_qdrant_scratch_directory_is_removed(quick_run: Any) -> None:
    _, _, document = quick_run
    assert not Path(document["backends"]["qdrant"]["settings"]["scratch"]).exists()


def test_png_is_a_readable_chart(quick_run: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, out, _ = quick_run
    image = plt.imread(out / "benchmarks.png")
    height, width = image.shape[:2]
    assert width >= 600 and height >= 300


async def test_run_left_nothing_in_any_backend(
    quick_run: Any, stack_outputs: dict[str, Any], stack_admin: dict[str, Any]
) -> None:
    _, _, document = quick_run
    prefixes = {b: r["settings"]["data_prefix"] for b, r in document["backends"].items()}
    leftovers = await _leftovers(stack_outputs, prefixes, stack_admin["redis_admin_url"])
    assert leftovers == dict.fromkeys(leftovers, 0)


async def _leftovers(
    outputs: dict[str, Any], prefixes: dict[str, str], redis_admin_url: str
) -> dict[str, int]:
    """How many records, keys, nodes or collections of this run each backend still holds
    (Redis's SCAN as the operator: the adapter's ACL user may not send it)."""
    counts: dict[str, int] = {}
    async with await psycopg.AsyncConnection.connect(outputs["postgres_url"]) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM active_context WHERE session_id LIKE %s",
            (prefixes["postgres"] + "%",),
        )
        (counts["postgres"],) = await cur.fetchone()  # type: ignore[misc]
    client = raw_redis(redis_admin_url, outputs)
    try:
        counts["redis"] = len(
            [k async for k in client.scan_iter(match=f"session:{prefixes['redis']}*")]
        )
    finally:
        await client.aclose()
    driver = AsyncGraphDatabase.driver(
        outputs["neo4j_url"], auth=(outputs.get("neo4j_user") or "neo4j", outputs["neo4j_password"])
    )
    try:
        records, _, _ = await driver.execute_query(
            "MATCH (n) WHERE n.bench_run = $run RETURN count(n) AS n", {"run": prefixes["neo4j"]}
        )
        counts["neo4j"] = records[0]["n"]
    finally:
        await driver.close()
    async with httpx.AsyncClient(
        base_url=outputs["typesense_url"],
        headers={"X-TYPESENSE-API-KEY": typesense_admin_key(outputs)},
        trust_env=False,
        verify=ssl.create_default_context(),
    ) as http:
        collections = (await http.get("/collections")).json()
        counts["typesense"] = sum(
            1 for c in collections if c["name"].startswith(prefixes["typesense"])
        )
    return counts
