"""``scripts/soak --minutes 2``: the workload runs through all five adapters without an error, and
open FDs and server-side connections do not grow.

"Do not grow", exactly (``tests/soak/soak.py``): for the process's open FDs and for each
backend's connections as the server lists them, the value at the end of the last minute is no
higher than the highest value read (every 5 s, and at each minute's end) up to the end of
minute 1, the first steady minute. Re-checked here from the JSON, not taken from the script's
verdict alone. Nothing is asserted on latency.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from stack_tls import raw_redis

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("postgres", "redis", "neo4j", "typesense", "qdrant")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


@pytest.fixture(scope="module")
def soak(stack_outputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("soak") / "soak.json"
    proc = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "soak"),
            "--minutes",
            "2",
            "--warmup",
            "10",
            "--out",
            str(out),
            "--check",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )
    result = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else None
    return proc, result


def test_the_soak_passes_its_check(soak: Any) -> None:
    proc, result = soak
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result["check"]["ok"] is True, result["check"]["why"]
    assert result["check"]["why"] == []


def test_every_minute_drove_every_backend_without_an_error(soak: Any) -> None:
    _, result = soak
    assert [s["minute"] for s in result["samples"]] == [0, 1, 2]
    for sample in result["samples"]:
        assert sample["errors"] == 0, sample["error_examples"]
        assert set(sample["ops_by_backend"]) == set(BACKENDS)
        assert all(n > 0 for n in sample["ops_by_backend"].values()), sample["ops_by_backend"]
        assert sample["p50_ms"] <= sample["p99_ms"]
        assert sample["rss_mb"] > 0


def test_fds_and_server_side_connections_do_not_grow(soak: Any, stack_outputs: dict) -> None:
    _, result = soak
    first_two = result["samples"][:2]
    last = result["samples"][-1]
    assert last["fds"] <= max(s["peak"]["fds"] for s in first_two)
    for backend in BACKENDS:
        ceiling = max(s["peak"]["connections"][backend] or 0 for s in first_two)
        assert (last["connections"][backend] or 0) <= ceiling, backend
    # The pools were warmed to their bound (4 workers): the servers saw them.
    for backend in ("postgres", "redis", "neo4j"):
        assert result["samples"][0]["connections"][backend] == result["workers"], backend
    if not stack_outputs.get("qdrant_url"):
        assert last["connections"]["qdrant"] >= 1  # the embedded engine's files


async def test_the_soak_left_nothing_behind(
    soak: Any, stack_outputs: dict[str, Any], stack_admin: dict[str, Any]
) -> None:
    _, result = soak
    pattern = f"soak-{result['run_id']}-%"
    async with await psycopg.AsyncConnection.connect(stack_outputs["postgres_url"]) as conn:
        for table in ("active_context", "working_memory"):
            cur = await conn.execute(
                f"SELECT count(*) FROM {table} WHERE session_id LIKE %s",  # noqa: S608
                (pattern,),
            )
            assert await cur.fetchone() == (0,), table
    client = raw_redis(stack_admin["redis_admin_url"], stack_outputs)  # SCAN: the operator's
    try:
        keys = [k async for k in client.scan_iter(match=f"session:soak-{result['run_id']}-*")]
    finally:
        await client.aclose()
    assert keys == []
