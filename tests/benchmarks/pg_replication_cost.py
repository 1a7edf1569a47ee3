"""What a synchronous hot standby costs PostgreSQL: the ``scripts/bench`` figures of the
adapter on a single node and on the cluster topology's primary + standby, with the CPU each
node's processes used, and the raw cost of one write at each ``synchronous_commit`` level.

    uv run python tests/benchmarks/pg_replication_cost.py \\
        --single /tmp/single/.mas/stack-outputs.json --cluster .mas/stack-outputs.json \\
        [--rounds 3] [--writes 400] [--json OUT]

The single-node stack is a second local stack (``mas-devstack --root DIR up postgres`` on
another port base), the cluster the stack of ``mas-devstack up --topology cluster``. The arms
are **interleaved** (single, cluster, single, ...), so a change of the machine's load hits
both; each figure is the median over the rounds.

* **Adapter.** ``scripts/bench --quick --backends postgres`` per arm: ops/s of the adapter and
  of ``raw_bare`` (one bare psycopg connection), store and reads.
* **CPU per node.** The CPU seconds (user + system) of each node's postmaster and all its
  processes (backends, WAL sender/receiver, startup) over that arm's bench run
  (``benchkit.ServerCpu``: the postmaster's own and its reaped children's times, plus its
  live children's).
* **One write per level.** ``--writes`` single-row INSERTs per level and round, on bare
  connections to the cluster's primary with ``synchronous_commit`` set per session
  (``local``: no wait for the standby; ``on``: until the standby has flushed the WAL;
  ``remote_apply``: until it has applied it, the cluster's setting), taking turns write by
  write, and on the single node (its default ``on``: the local flush only); median and p95 ms.
  After each cluster write a bare connection to the standby reads the row at once: how many
  of those reads missed it, per level (read-your-writes on the standby).

Asserts nothing. Rows go to ``test-bench-pgrep-*`` sessions and are deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchkit import ServerCpu

ROOT = Path(__file__).resolve().parents[2]
LEVELS = ("local", "on", "remote_apply")
INSERT = (
    "INSERT INTO active_context (session_id, turn_id, content, metadata) "
    "VALUES (%s, %s, %s, '{}'::jsonb)"
)
READ = "SELECT 1 FROM active_context WHERE session_id = %s AND turn_id = %s"


def _bench(outputs: Path, out: Path) -> tuple[dict[str, Any], dict[str, float], float]:
    """One ``scripts/bench --quick`` of postgres: its figures, CPU s per node, wall s."""
    servers = ServerCpu.of_local_stack("postgres", outputs)
    if not servers.procs:
        sys.exit(f"{outputs}: no PostgreSQL node of a local stack runs there")
    env = {
        **os.environ,
        "MAS_STACK_OUTPUTS": str(outputs),
        "MAS_STACK_ADMIN": str(outputs.with_name("stack-admin.json")),
    }
    began = time.monotonic()
    subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--quick", "--backends", "postgres", "--out", str(out)],
        env=env, check=True, capture_output=True, timeout=1800,
    )  # fmt: skip
    wall = time.monotonic() - began
    cpu = servers.seconds()
    figures = json.loads((out / "benchmarks.json").read_text())["backends"]["postgres"]
    return figures, cpu, wall


async def _writes(
    data: dict[str, Any], levels: tuple[str, ...], writes: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """ms per single-row INSERT at each ``synchronous_commit`` level, and how many reads on
    the standby right after the acknowledgement missed the row (``data``: the stack outputs).

    One bare connection per level to the read-write server; the levels take turns write by
    write, in a shuffled order, so the machine's load weighs on each alike. With a standby
    (the cluster), one bare connection to it reads each row back at once."""
    import psycopg

    ca = {"sslrootcert": data["tls_ca"]} if data.get("tls_ca") else {}
    url = data["postgres_url"]
    session = f"test-bench-pgrep-{uuid.uuid4().hex[:10]}"
    conns = {
        level: await psycopg.AsyncConnection.connect(
            url, autocommit=True, options=f"-c synchronous_commit={level}", **ca
        )
        for level in levels
    }
    standby = None
    if "," in url.split("@", 1)[1].split("/", 1)[0]:
        standby = await psycopg.AsyncConnection.connect(
            url, autocommit=True, target_session_attrs="standby", **ca
        )
    times: dict[str, list[float]] = {level: [] for level in levels}
    missed = dict.fromkeys(levels, 0)
    shuffle = random.Random(17)
    try:
        for i in range(writes):
            order = list(levels)
            shuffle.shuffle(order)
            for level in order:
                turn = i * len(levels) + levels.index(level)
                began = time.perf_counter()
                await conns[level].execute(INSERT, (session, turn, f"replication cost {i}"))
                times[level].append((time.perf_counter() - began) * 1000)
                if standby is not None:
                    cur = await standby.execute(READ, (session, turn))
                    missed[level] += (await cur.fetchone()) is None
        await conns[levels[0]].execute(
            "DELETE FROM active_context WHERE session_id = %s", (session,)
        )
    finally:
        for conn in [*conns.values(), *([standby] if standby else [])]:
            await conn.close()
    return times, missed


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--single", type=Path, required=True, help="single-node outputs file")
    parser.add_argument("--cluster", type=Path, required=True, help="cluster outputs file")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writes", type=int, default=400)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    arms = {"single": args.single.resolve(), "cluster": args.cluster.resolve()}
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    plan = {"cluster": LEVELS, "single": ("on",)}
    writes: dict[str, list[float]] = {f"{a} {lv}": [] for a, lvs in plan.items() for lv in lvs}
    missed: dict[str, int] = dict.fromkeys(writes, 0)
    per_round: dict[str, list[float]] = {name: [] for name in writes}
    loads: list[float] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for arm, path in arms.items():
                loads.append(os.getloadavg()[0])
                figures, cpu, wall = _bench(path, Path(tmp) / f"{arm}-{r}")
                runs[arm].append({"figures": figures, "cpu_s": cpu, "wall_s": round(wall, 1)})
                data = json.loads(path.read_text())
                times, misses = asyncio.run(_writes(data, plan[arm], args.writes))
                for level, samples in times.items():
                    writes[f"{arm} {level}"] += samples
                    per_round[f"{arm} {level}"].append(round(statistics.median(samples), 3))
                    missed[f"{arm} {level}"] += misses[level]
            print(f"round {r + 1}: load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    result = {
        "runs": runs,
        "writes": {
            name: {**_stats(samples), "standby_reads_missed": missed[name], "n": len(samples)}
            for name, samples in writes.items()
        },
        "writes_median_per_round": per_round,
        "loadavg": loads,
        "cpus": os.cpu_count(),
        "seconds": round(time.monotonic() - began, 1),
    }
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(summarise(result))
    return 0


def summarise(result: dict[str, Any]) -> str:
    """The Markdown tables of a run (``main``'s result)."""

    def med(arm: str, op: str, who: str) -> float:
        return float(
            statistics.median(
                run["figures"]["ops"][op][who]["ops_per_s"] for run in result["runs"][arm]
            )
        )

    lines = [
        "| operation | single ops/s | cluster ops/s | cluster ÷ single | raw_bare single | "
        "raw_bare cluster | raw_bare cluster ÷ single |",
        "|---|---|---|---|---|---|---|",
    ]
    for op in result["runs"]["single"][0]["figures"]["ops"]:
        single, cluster = med("single", op, "adapter"), med("cluster", op, "adapter")
        bare_s, bare_c = med("single", op, "raw_bare"), med("cluster", op, "raw_bare")
        lines.append(
            f"| {op} | {single:,.0f} | {cluster:,.0f} | {cluster / single:.2f} | "
            f"{bare_s:,.0f} | {bare_c:,.0f} | {bare_c / bare_s:.2f} |"
        )
    lines += [
        "",
        "| arm | node | CPU s per bench run (median) | wall s (median) |",
        "|---|---|---|---|",
    ]
    for arm, arm_runs in result["runs"].items():
        wall = statistics.median(run["wall_s"] for run in arm_runs)
        for node in arm_runs[0]["cpu_s"]:
            cpu = statistics.median(run["cpu_s"][node] for run in arm_runs)
            lines.append(f"| {arm} | {node} | {cpu:.2f} | {wall:.1f} |")
    lines += [
        "",
        "| write on | synchronous_commit | median ms | p95 ms | standby reads that missed it |",
        "|---|---|---|---|---|",
    ]
    for name, figures in result["writes"].items():
        arm, level = name.split(" ", 1)
        miss = f"{figures['standby_reads_missed']} of {figures['n']}" if arm == "cluster" else "-"
        lines.append(f"| {arm} | {level} | {figures['median_ms']} | {figures['p95_ms']} | {miss} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--summarise":
        print(summarise(json.loads(Path(sys.argv[2]).read_text())))
        sys.exit(0)
    sys.exit(main())
