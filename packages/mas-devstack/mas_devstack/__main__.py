"""``mas-devstack up|down|status|prepare``: the local stack from the command line."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ._cluster import TOPOLOGIES, TOPOLOGY_ENV
from ._errors import DevstackError
from ._layout import HOME_ENV, PORT_BASE_ENV, SERVICE_NAMES
from ._network import HOSTS_ENV
from ._stack import Stack


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mas-devstack",
        description="Run the five mas-memory backends locally: on 127.0.0.1, or on the hosts of "
        "a Pulumi stack file simulated by network namespaces (data in .mas/).",
    )
    parser.add_argument(
        "--root",
        type=Path,
        help=f"directory that holds .mas/ (default: ${HOME_ENV}, else the current directory)",
    )
    parser.add_argument(
        "--port-base",
        type=int,
        help=f"use five consecutive ports from this one (default: ${PORT_BASE_ENV}, else "
        "55432/56379/58108/57687)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    services_help = f"services (default: all of {', '.join(SERVICE_NAMES)})"
    up = commands.add_parser("up", help="start what is not running; write stack-outputs.json")
    up.add_argument("services", nargs="*", help=services_help)
    up.add_argument(
        "--hosts",
        type=Path,
        metavar="STACK_FILE",
        help=f"run the servers on the hosts of a Pulumi stack file (e.g. Pulumi.dev.yaml), "
        f"simulated by network namespaces on a private subnet (default: ${HOSTS_ENV}, else "
        "loopback); kept until down",
    )
    up.add_argument(
        "--topology",
        choices=TOPOLOGIES,
        help="single: one server per backend; cluster: Redis Cluster, a Typesense Raft "
        "cluster and a PostgreSQL primary with a hot standby (the backends that have a cluster "
        f"mode), the others single-node. Kept until down (default: ${TOPOLOGY_ENV}, else the "
        "running stack's, else single)",
    )
    up.add_argument(
        "--no-tls",
        action="store_true",
        help="run the servers without TLS, with plaintext URLs in the outputs (only for "
        "measuring what TLS costs: scripts/bench --tls-cost); kept until down "
        "(default: TLS, or $MAS_DEVSTACK_TLS=0)",
    )
    down = commands.add_parser("down", help="stop what 'up' started (by PID)")
    down.add_argument("services", nargs="*", help=services_help)
    commands.add_parser("status", help="show each service: state, pid, address, version")
    commands.add_parser(
        "prepare", help="fetch the Neo4j jars and join the Typesense binary, start nothing"
    )
    return parser


def _status(stack: Stack) -> int:
    from ._versions import local_versions

    tested = local_versions()
    plan = stack.plan
    if plan is not None:
        hosts = ", ".join(f"{h.name} {h.address} (netns {h.namespace})" for h in plan.hosts)
        print(f"simulated hosts of {plan.stack_file} on {plan.subnet}: {hosts}")
    if stack.topology != "single":
        clustered = ", ".join(stack.clusters) or "none yet"
        print(f"topology: {stack.topology} (clustered: {clustered})")
    print(f"{'service':<10} {'state':<13} {'pid':>7}  {'address':<44} {'version':<28} tested")
    for status in stack.status().values():
        pid = str(status.pid) if status.pid else "-"
        print(
            f"{status.name:<10} {status.state:<13} {pid:>7}  {status.address or '-':<44} "
            f"{status.version or '-':<28} {tested[status.backend].tested}"
        )
    return 0


def _prepare() -> int:
    from ._runtime import neo4j_runtime, toxiproxy_server, typesense_binary

    print(f"typesense binary: {typesense_binary()}")
    runtime = neo4j_runtime()
    print(f"neo4j {runtime.version}: jars in {runtime.lib_dir}, launcher in {runtime.classes_dir}")
    try:
        print(f"toxiproxy (latency faults of the simulated hosts): {toxiproxy_server()}")
    except DevstackError as exc:  # only the latency fault test needs it: say so, go on
        print(f"toxiproxy: not built, the latency fault test will fail: {exc}")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="mas-devstack: %(message)s", stream=sys.stderr)
    # The drivers log every refused connection while a backend starts; yoyo logs each step.
    for noisy in ("neo4j", "httpx", "httpcore", "yoyo"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        if args.command == "prepare":
            raise SystemExit(_prepare())
        tls = False if getattr(args, "no_tls", False) else None
        stack = Stack(
            args.root,
            port_base=args.port_base,
            hosts=getattr(args, "hosts", None),
            tls=tls,
            topology=getattr(args, "topology", None),
        )
        if args.command == "up":
            began = time.monotonic()
            result = stack.up(args.services or None)
            elapsed = time.monotonic() - began
            started = ", ".join(result.started) or "nothing (all were running)"
            print(f"up in {elapsed:.1f} s; started: {started}")
            print(f"outputs: {stack.outputs_path} (admin: {stack.admin_outputs_path})")
            print(f"tls: {'on, CA ' + str(stack.ca.ca_cert_path) if stack.ca else 'OFF'}")
            print(f"topology: {stack.topology}")
        elif args.command == "down":
            stopped = stack.down(args.services or None)
            print(f"stopped: {', '.join(stopped) or 'nothing (none was running)'}")
        else:
            raise SystemExit(_status(stack))
    except DevstackError as exc:
        print(f"mas-devstack: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
