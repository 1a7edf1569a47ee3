"""A stand-in backend for the devstack tests: a tiny TCP echo server run with this Python.

It takes the ``redis`` slot of a :class:`Stack` (PID file, log, port), so the stack's start,
reuse, restart and stop logic runs for real, in milliseconds, without any real backend.
Also runnable as a script: ``python devstack_fakes.py ROOT PORT_BASE`` starts it and exits.

:class:`EchoCluster` is a cluster module (``CLUSTER``) of two echo nodes for ``redis``: point
``mas_devstack._cluster.CLUSTER_MODULES["redis"]`` at this module to run the cluster topology's
plumbing for real.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from mas_devstack import ClusterBackend, ClusterContext, Stack
from mas_devstack._services import ProcessService

ECHO = """
import os, socket, sys
print("echo pid", os.getpid(), "secret", os.environ["FAKE_SECRET"], flush=True)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
while True:
    conn, _ = server.accept()
    with conn:
        conn.sendall(conn.recv(64))
"""


class EchoService(ProcessService):
    """Answers when the echo comes back (a SIGSTOPped one accepts TCP but never echoes)."""

    name = "redis"
    start_timeout: ClassVar[float] = 20.0
    stop_timeout: ClassVar[float] = 5.0
    reuse_timeout: ClassVar[float] = 1.0
    script = ECHO
    fail_after_start = False

    @property
    def port(self) -> int:
        return self.ports.redis

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script, str(self.port)]

    def env(self) -> dict[str, str]:
        return {"FAKE_SECRET": self.secrets.redis_password}

    def probe(self, timeout: float) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"ping")
            if sock.recv(4) != b"ping":
                raise RuntimeError("no echo")

    def after_start(self) -> None:
        if self.fail_after_start:
            raise RuntimeError("role setup refused")

    def version(self, timeout: float = 3.0) -> str | None:
        return "echo 1"

    def outputs(self) -> dict[str, str | None]:
        return {"redis_url": f"redis://127.0.0.1:{self.port}/0"}


class EchoNode(EchoService):
    """One node of :class:`EchoCluster`: ``redis-<i>`` on the i-th Redis Cluster port."""

    def __init__(self, context: ClusterContext, index: int) -> None:
        super().__init__(
            context.layout, context.ports, context.secrets, **context.node_options("127.0.0.1")
        )
        self.index = index
        self.name = f"redis-{index}"

    @property
    def port(self) -> int:
        return self.ports.redis_cluster[self.index]


class EchoCluster(ClusterBackend):
    """Two echo nodes "forming a cluster": a marker file written once both answer."""

    backend = "redis"

    def __init__(self, context: ClusterContext) -> None:
        super().__init__(context)
        self._nodes = [EchoNode(context, i) for i in range(2)]
        self.formed = context.layout.run_dir / "echo-cluster-formed"

    def nodes(self) -> list[EchoNode]:
        return self._nodes

    def start(self, ensure: Callable[[ProcessService], bool]) -> list[str]:
        started = [node.name for node in self._nodes if ensure(node)]
        self.formed.write_text(",".join(n.address for n in self._nodes))
        return started

    def outputs(self) -> dict[str, str | None]:
        return {"redis_url": f"redis://127.0.0.1:{self._nodes[0].port}/0"}

    def admin_outputs(self) -> dict[str, str | None]:
        return {"redis_admin_url": f"redis://admin@127.0.0.1:{self._nodes[0].port}/0"}


CLUSTER = EchoCluster


def with_echo(stack: Stack, service_class: type[EchoService] = EchoService) -> EchoService:
    """Put an echo service into ``stack``'s redis slot."""
    service = service_class(stack.layout, stack.ports, stack._load_secrets())
    stack._services["redis"] = service
    return service


if __name__ == "__main__":
    stack = Stack(Path(sys.argv[1]), port_base=int(sys.argv[2]))
    with_echo(stack)
    print(stack.start("redis"), stack.pid("redis"), flush=True)
