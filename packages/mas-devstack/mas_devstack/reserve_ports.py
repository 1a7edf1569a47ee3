"""Reserve the stack's ports from the kernel's ephemeral range (CI; root only).

The default ports (55432 and up) lie inside Linux's ephemeral range (32768-60999), so the
kernel may hand one to a client socket as its source port: a server that (re)starts then
finds its port taken, and a client retrying a port where nothing listens can even connect to
itself (source port = destination port). Listing the stack's ports in
``net.ipv4.ip_local_reserved_ports`` keeps the kernel from choosing them as source ports,
while servers may still bind them. ``python -m mas_devstack.reserve_ports`` adds the ports of
the stack that ``MAS_DEVSTACK_PORT_BASE`` (or the default) names to what is reserved already.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ._layout import PORT_SPAN, Ports

RESERVED = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


def stack_ports(ports: Ports) -> list[int]:
    """Every port a stack may listen on: its span from the base and the five named ones."""
    span = range(ports.base, ports.base + PORT_SPAN)
    named = (ports.postgres, ports.redis, ports.neo4j, ports.typesense, ports.typesense_peering)
    return sorted({*span, *named})


def ranges(ports: list[int]) -> str:
    """``1,2,3,7`` as ``1-3,7``: the sysctl's own syntax."""
    runs: list[list[int]] = []
    for port in sorted(set(ports)):
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def merged(current: str, ports: list[int]) -> str:
    """What to write: the ports already reserved (the sysctl's syntax) plus ``ports``."""
    kept: list[int] = []
    for part in filter(None, current.strip().split(",")):
        low, _, high = part.partition("-")
        kept.extend(range(int(low), int(high or low) + 1))
    return ranges([*kept, *ports])


def main() -> int:
    wanted = stack_ports(Ports.resolve())
    try:
        RESERVED.write_text(merged(RESERVED.read_text(), wanted) + "\n")
    except OSError as exc:  # not root, or a read-only /proc/sys
        print(f"reserve_ports: {RESERVED} not written: {exc}", file=sys.stderr)
        return 1
    print(f"reserve_ports: {ranges(wanted)} reserved from the ephemeral range")
    return 0


if __name__ == "__main__":
    sys.exit(main())
