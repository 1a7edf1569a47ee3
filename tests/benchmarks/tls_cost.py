"""What TLS costs, per backend: the same ``scripts/bench`` figures on a TLS stack and on a
plaintext one, as ratios, and the connection set-up cost apart from the steady state.

    uv run python tests/benchmarks/tls_cost.py --tls .mas/stack-outputs.json \\
        --plain /tmp/plain/.mas/stack-outputs.json [--rounds 2] [--connects 20] \\
        [--backends typesense,redis]

The plaintext stack is a second local stack started with ``mas-devstack up --no-tls`` in
another root and port base. The two arms are **interleaved** (TLS, plaintext, TLS, ...), so a
change of the machine's load hits both; each figure is the median over the rounds, and the
load averages are printed with it. Steady state: each ``scripts/bench --quick`` figure of the
adapter (ops/s of the pooled, connected adapter: the handshake is paid once per pooled
connection). Set-up: ``connect()`` then ``disconnect()`` of a fresh adapter, the handshake and
the authentication included, median of ``--connects``. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("postgres", "redis", "neo4j", "typesense")


def _bench(outputs: Path, out: Path, backends: list[str]) -> dict[str, Any]:
    env = {
        **os.environ,
        "MAS_STACK_OUTPUTS": str(outputs),
        "MAS_STACK_ADMIN": str(outputs.with_name("stack-admin.json")),
    }
    subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--quick", "--backends", ",".join(backends),
         "--out", str(out)],
        env=env, check=False, capture_output=True, timeout=1800,
    )  # fmt: skip
    return json.loads((out / "benchmarks.json").read_text())["backends"]  # type: ignore[no-any-return]


def _connect_times(outputs: Path, n: int, backends: list[str]) -> dict[str, float]:
    """Median ms of connect()+disconnect() per backend, in a child process (fresh env)."""
    code = f"""
import asyncio, json, os, statistics, time
from mas_storage import create_adapter, load_admin_outputs
async def main():
    out = {{}}
    for kind in {backends!r}:
        times = []
        for _ in range({n}):
            adapter = create_adapter(kind, auto_connect=False)
            t = time.perf_counter()
            await adapter.connect()
            times.append((time.perf_counter() - t) * 1000)
            await adapter.disconnect()
        out[kind] = statistics.median(times)
    print(json.dumps(out))
asyncio.run(main())
"""
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "PGSSLROOTCERT")}
    env["MAS_STACK_OUTPUTS"] = str(outputs)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900,
        check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tls", type=Path, required=True)
    parser.add_argument("--plain", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connects", type=int, default=20)
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    if unknown := set(backends) - set(BACKENDS):
        parser.error(f"unknown backends: {sorted(unknown)} (known: {', '.join(BACKENDS)})")
    arms = {"tls": args.tls.resolve(), "plain": args.plain.resolve()}
    steady: dict[str, list[dict[str, Any]]] = {"tls": [], "plain": []}
    setup: dict[str, list[dict[str, float]]] = {"tls": [], "plain": []}
    loads: list[tuple[float, float, float]] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for arm, path in arms.items():
                loads.append(os.getloadavg())
                setup[arm].append(_connect_times(path, args.connects, backends))
                steady[arm].append(_bench(path, Path(tmp) / f"{arm}-{r}", backends))
                print(f"round {r + 1} {arm}: load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    result = {"steady": steady, "setup": setup, "loads": loads,
              "seconds": time.monotonic() - began}  # fmt: skip
    print(json.dumps(result))
    return 0


def summarise(result: dict[str, Any]) -> str:
    """The Markdown tables of a run's JSON (``main``'s output)."""
    lines = ["| backend | operation | TLS ops/s | plaintext ops/s | TLS ÷ plaintext |",
             "|---|---|---|---|---|"]  # fmt: skip
    measured = [b for b in BACKENDS if b in result["setup"]["tls"][0]]
    for backend in measured:
        ops = result["steady"]["tls"][0].get(backend, {}).get("ops", {})
        for op in ops:

            def med(arm: str, backend: str = backend, op: str = op) -> float:
                values = [
                    run[backend]["ops"][op]["adapter"]["ops_per_s"]
                    for run in result["steady"][arm]
                    if backend in run and op in run[backend].get("ops", {})
                ]
                return statistics.median(values) if values else float("nan")

            tls, plain = med("tls"), med("plain")
            lines.append(f"| {backend} | {op} | {tls:,.0f} | {plain:,.0f} | {tls / plain:.2f} |")
    lines += ["", "| backend | connect() TLS ms | plaintext ms | TLS ÷ plaintext |",
              "|---|---|---|---|"]  # fmt: skip
    for backend in measured:
        tls = statistics.median(run[backend] for run in result["setup"]["tls"])
        plain = statistics.median(run[backend] for run in result["setup"]["plain"])
        lines.append(f"| {backend} | {tls:.1f} | {plain:.1f} | {tls / plain:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--summarise":
        print(summarise(json.loads(Path(sys.argv[2]).read_text())))
        sys.exit(0)
    sys.exit(main())
