"""The one benchmark command (``scripts/bench``): every backend, one report.

Runs ``bench_<backend>.py`` for each backend in turn against the stack outputs
(``$MAS_STACK_OUTPUTS``, else the local ``.mas/stack-outputs.json``), prints each backend's
table as it finishes, and writes into ``--out``:

* ``benchmarks.md``: a table per backend with the targets beside the measured figures;
* ``benchmarks.json``: every raw number, the machine facts and the load averages;
* ``benchmarks.png``: adapter ÷ raw per operation.

With ``--scaling`` it runs the scaling study instead (``scale_<backend>.py``: each path at
10^3 .. 10^6 items, see ``scalekit.py``) and writes ``scaling.json`` and ``scaling.png``; the
study's section is the end of ``benchmarks.md`` (rewritten from ``benchmarks.json`` when that is
in ``--out``, so either run keeps the other's part). ``--scaling --quick`` uses two small sizes.

With ``--cluster`` it measures the backends that have a cluster mode (Redis, Typesense,
PostgreSQL) twice in one invocation: on a single-node stack, then on a cluster stack
(``--topology cluster``), each a stack of its own that this command starts and stops in
``.mas/bench-cluster/<topology>`` on the port base of ``$MAS_DEVSTACK_PORT_BASE`` (so your
own stack on that base must be down); it writes ``benchmarks-cluster.md`` and ``.json``
(``cluster_report.py``), the two topologies side by side with the CPU of every server node.

``--out`` defaults to ``docs/`` for a full run and to ``.mas/bench/`` for ``--quick``, so a
quick run never overwrites the published report unless asked to. A backend that fails is
reported as not measured and makes the exit status 1; a target not met does not (this is a
benchmark, not a test).

Usage, from the repository root with the stack up::

    scripts/bench [--quick] [--scaling | --cluster] [--backends redis,postgres] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchkit import loadavg
from cluster_report import TOPOLOGIES, write_cluster
from report import JSON_NAME, MD_NAME, markdown, text_table, write_reports
from scaling_report import SCALING_HEADING, SCALING_JSON, scaling_markdown, write_scaling

from mas_storage import ADMIN_OUTPUTS_ENV, STACK_OUTPUTS_ENV, load_stack_outputs, redact

BACKENDS = ("postgres", "redis", "qdrant", "neo4j", "typesense")
#: Stack-outputs keys of which one must be set to reach each backend.
NEEDS = {
    "postgres": ("postgres_url",),
    "redis": ("redis_url",),
    "qdrant": ("qdrant_url", "qdrant_path"),
    "neo4j": ("neo4j_password",),
    "typesense": ("typesense_api_key",),
}
#: The backends with a cluster mode in the local stack (``--cluster``).
CLUSTERED = ("postgres", "redis", "typesense")
ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description="Benchmark every adapter against its raw driver."
    )
    parser.add_argument("--quick", action="store_true", help="a short run (CI proves it works)")
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="the scaling study: each path at 10^3..10^6 items (not in CI; --quick is small)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="single-node and cluster figures side by side: starts and stops a stack of each "
        "topology itself (only postgres, redis, typesense)",
    )
    parser.add_argument(
        "--backends",
        default=None,
        help=f"comma-separated subset of {','.join(BACKENDS)} (default: all; with --cluster: "
        f"{','.join(CLUSTERED)})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for benchmarks.md/.json/.png (default: docs/, or .mas/bench/ with --quick)",
    )
    args = parser.parse_args(argv)
    if args.cluster and args.scaling:
        parser.error("--cluster and --scaling are separate runs: choose one")
    known = CLUSTERED if args.cluster else BACKENDS
    chosen = [b.strip() for b in (args.backends or ",".join(known)).split(",") if b.strip()]
    unknown = sorted(set(chosen) - set(known))
    if unknown or not chosen:
        parser.error(f"unknown backend(s) {unknown}; choose from {', '.join(known)}")
    args.backends = list(dict.fromkeys(chosen))
    if args.out is None:
        args.out = ROOT / (".mas/bench" if args.quick else "docs")
    return args


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


def _git_commit() -> str:
    """The short commit, marked when tracked files have uncommitted changes."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


def machine_facts() -> dict[str, Any]:
    """CPU count and model, platform, Python, commit and the load average now."""
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_count": usable,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "git": _git_commit(),
        "loadavg_start": loadavg(),
    }


def _secrets(outputs: dict[str, Any]) -> list[str]:
    """Every credential in the outputs (passwords, keys, URL passwords), for redaction."""
    from urllib.parse import urlsplit

    found = []
    for key, value in outputs.items():
        if not isinstance(value, str) or not value:
            continue
        if key.endswith(("password", "api_key")):
            found.append(value)
        elif key.endswith("url"):
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                found.append(password)
    return found


def with_admin_credentials(outputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs with the admin outputs' credentials in place of the adapters' own: the
    benchmarks make and drop their own tables' rows, keys and collections and clean up with
    SCAN, which the least-privileged credentials may not. Per call, the least-privileged
    path differs by an ACL or privilege check on the server, not by what is measured here."""
    from mas_storage import load_admin_outputs

    admin = load_admin_outputs()
    swaps = {
        "postgres_url": "postgres_owner_url",
        "redis_url": "redis_admin_url",
        "typesense_api_key": "typesense_admin_api_key",
    }
    return {**outputs, **{key: admin[src] for key, src in swaps.items() if src in admin}}


def trust_stack_ca(outputs: dict[str, Any]) -> None:
    """Trust the stack's CA in this process (libpq's PGSSLROOTCERT, OpenSSL's SSL_CERT_FILE):
    the raw-driver baselines and the adapters' explicit configs then verify the servers, so
    both sides of every ratio pay the same TLS (as tests/conftest.py does for the suites)."""
    from mas_storage import TlsSettings

    ca = outputs.get("tls_ca")
    if ca:
        path = TlsSettings.from_config({"tls_ca": ca}).ca_file()
        assert path is not None
        os.environ["PGSSLROOTCERT"] = path
        os.environ["SSL_CERT_FILE"] = path


async def run_backend(
    backend: str, outputs: dict[str, Any], quick: bool, prefix: str = "bench"
) -> dict[str, Any]:
    """One backend's result, with its load averages; ``{"error": ...}`` when it fails.

    ``prefix`` picks the module: ``bench_<backend>`` (the ratios) or ``scale_<backend>``.
    """
    start_load, started = loadavg(), time.perf_counter()
    if not any(outputs.get(key) for key in NEEDS[backend]):
        result: dict[str, Any] = {
            "backend": backend,
            "error": f"no {' or '.join(NEEDS[backend])} in the stack outputs",
        }
    else:
        try:
            module = importlib.import_module(f"{prefix}_{backend}")
            result = await module.run(outputs, quick=quick)
        except Exception as exc:  # a failed backend is reported, the others still run
            message = redact(f"{type(exc).__name__}: {exc}", _secrets(outputs))
            result = {"backend": backend, "error": message}
    result.setdefault("facts", {})
    result["facts"]["loadavg_start"] = start_load
    result["facts"]["loadavg_end"] = loadavg()
    result["facts"]["seconds"] = round(time.perf_counter() - started, 1)
    return result


async def run_all(
    backends: list[str], outputs: dict[str, Any], quick: bool, scaling: bool = False
) -> dict[str, Any]:
    """Every chosen backend in turn, printing each table (or slopes) as it finishes."""
    results = {}
    for backend in backends:
        print(f"-- {backend} ...", flush=True)
        if scaling:
            results[backend] = await run_backend(backend, outputs, quick, prefix="scale")
            print(_slopes(results[backend]), flush=True)
        else:
            results[backend] = await run_backend(backend, outputs, quick)
            print(text_table(results[backend]), flush=True)
    return results


def _slopes(result: dict[str, Any]) -> str:
    if "error" in result or "skipped" in result:
        return f"  not measured: {result.get('error') or result.get('skipped')}"
    lines = []
    for name, path in result.get("paths", {}).items():
        slope = path.get("slope")
        p50 = ", ".join(f"{p['p50_ms']:.3g}" for p in path["points"])
        shown = "-" if slope is None else f"{slope:+.2f}"
        lines.append(f"  {name:<28} slope {shown}  p50 ms by size: {p50}")
    return "\n".join(lines)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def write_markdown(out: Path, scaling: dict[str, Any] | None) -> Path:
    """Put the scaling section at the end of ``benchmarks.md`` in ``out``.

    An existing file keeps everything before its scaling section (a report edited by hand, or
    written by another run, is not rewritten); without one, the ratio part is rendered from
    ``benchmarks.json`` when that exists, else a bare header starts the file.
    """
    extra = scaling_markdown(scaling) if scaling else []
    path = out / MD_NAME
    if path.is_file():
        head = path.read_text(encoding="utf-8").split(f"\n{SCALING_HEADING}\n", 1)[0]
        text = head.rstrip() + "\n\n" + "\n".join(extra)
    else:
        run = _read_json(out / JSON_NAME)
        if run is None:
            text = "# Benchmarks\n\nNo ratio run (`scripts/bench`) in this directory.\n\n"
            text += "\n".join(extra)
        else:
            text = markdown(run, extra)
    path.write_text(text.rstrip() + "\n", encoding="utf-8")
    return path


def measure(backends: list[str], quick: bool, scaling: bool = False) -> dict[str, Any]:
    """The chosen backends' results against the stack outputs this process reads now (with
    the admin credentials, trusting the stack's CA)."""
    outputs = with_admin_credentials(load_stack_outputs())
    trust_stack_ca(outputs)
    return asyncio.run(run_all(backends, outputs, quick, scaling))


def run_document(
    generated: str, started: float, machine: dict[str, Any], quick: bool, **parts: Any
) -> dict[str, Any]:
    """The run's document: when, how long, the machine (with the load now) and ``parts``."""
    machine["loadavg_end"] = loadavg()
    return {
        "generated_at": generated,
        "quick": quick,
        "duration_s": round(time.perf_counter() - started, 1),
        "machine": machine,
        **parts,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_facts()
    print(
        f"machine: {machine['cpu_count']} CPUs ({machine['cpu_model']}), "
        f"Python {machine['python']}, load average {machine['loadavg_start']}",
        flush=True,
    )
    started = time.perf_counter()
    generated = datetime.now(UTC).replace(microsecond=0).isoformat()
    if args.cluster:
        return _run_topologies(args, machine, started, generated)
    backends = measure(args.backends, args.quick, args.scaling)
    document = run_document(generated, started, machine, args.quick, backends=backends)
    if args.scaling:
        return _finish_scaling(carry_over(document, _read_json(args.out / SCALING_JSON)), args.out)
    scaling = _read_json(args.out / SCALING_JSON)
    paths = write_reports(document, args.out, scaling_markdown(scaling) if scaling else [])
    targets = [t for r in backends.values() for t in r.get("targets", [])]
    met = sum(1 for t in targets if t["met"])
    failed = [b for b, r in backends.items() if "error" in r]
    print(
        f"\n{met} of {len(targets)} targets met; {document['duration_s']:.0f} s; wrote "
        + ", ".join(str(p) for p in paths.values())
    )
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _run_topologies(
    args: argparse.Namespace, machine: dict[str, Any], started: float, generated: str
) -> int:
    """``--cluster``: the backends on a single-node stack, then on a cluster stack, each
    started here (in its own root, on the same port base, one after the other) and stopped
    after its run; then ``benchmarks-cluster.md``/``.json``."""
    from mas_devstack import Stack

    parts: dict[str, dict[str, Any]] = {}
    for topology in TOPOLOGIES:
        stack = Stack(ROOT / ".mas" / "bench-cluster" / topology, topology=topology)
        # up applies <root>/migrations: this repository's, as in the user's own stack.
        stack.root.mkdir(parents=True, exist_ok=True)
        if not (stack.root / "migrations").exists():
            (stack.root / "migrations").symlink_to(ROOT / "migrations")
        print(f"== {topology}: mas-devstack --root {stack.root} up {' '.join(args.backends)}")
        began = time.perf_counter()
        try:
            stack.up(args.backends)
            up_s = round(time.perf_counter() - began, 1)
            os.environ[STACK_OUTPUTS_ENV] = str(stack.outputs_path)
            os.environ[ADMIN_OUTPUTS_ENV] = str(stack.admin_outputs_path)
            backends = measure(args.backends, args.quick)
        finally:
            stack.down()
        parts[topology] = {"up_s": up_s, "backends": backends}
    document = run_document(generated, started, machine, args.quick, topologies=parts)
    paths = write_cluster(document, args.out)
    print(f"\n{document['duration_s']:.0f} s; wrote " + ", ".join(map(str, paths.values())))
    failed = [
        f"{t}/{b}" for t, p in parts.items() for b, r in p["backends"].items() if "error" in r
    ]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def carry_over(document: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """A scaling run of some backends, completed with the others' results from ``previous``
    (the study's JSON already in ``--out``), each marked with the run it comes from; so one
    backend can be measured again without redoing the hour. A quick run never mixes with a
    full one."""
    if not previous or bool(previous.get("quick")) != bool(document.get("quick")):
        return document
    merged = {}
    for backend in BACKENDS:
        if backend in document["backends"]:
            merged[backend] = document["backends"][backend]
        elif backend in previous.get("backends", {}):
            kept = dict(previous["backends"][backend])
            facts = dict(kept.get("facts", {}))
            facts.setdefault("carried_from", previous.get("generated_at"))
            kept["facts"] = facts
            merged[backend] = kept
    return {**document, "backends": merged}


def _finish_scaling(document: dict[str, Any], out: Path) -> int:
    """Write the study's files and the Markdown; 1 when a backend failed."""
    paths = write_scaling(document, out)
    paths["md"] = write_markdown(out, document)
    flagged = [
        f"{backend}.{name}"
        for backend, result in document["backends"].items()
        for name, path in result.get("paths", {}).items()
        if path.get("flag")
    ]
    print(
        f"\nscaling: {document['duration_s']:.0f} s; slope above 0.25: "
        f"{', '.join(flagged) or 'none'}; wrote " + ", ".join(str(p) for p in paths.values())
    )
    failed = [b for b, r in document["backends"].items() if "error" in r]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
