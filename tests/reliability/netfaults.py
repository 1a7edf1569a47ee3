"""Network faults for the reliability suite, on the local stack's simulated hosts.

The fault tests of :mod:`faults` kill and freeze processes; these cut the network instead, on
the two-host stack (``mas-devstack up --hosts Pulumi.dev.yaml``), under the same load runner
(:func:`faults.run_outage`) and the same assertions:

* **partition**: the backend's host is cut off (its link down, :meth:`HostNetwork.partition`)
  for a few seconds mid-load, then reconnected;
* **blackhole**: every TCP packet to and from the host is dropped silently (nftables in its
  namespace): no RST, no ICMP, only silence;
* **latency and loss**: 50 ms on every reply of the backend (a Toxiproxy ``latency`` toxic,
  downstream, in the host's namespace in front of the server) and 5 % of the host's packets
  dropped each way (nftables ``numgen``). The kernel here has no ``netem`` qdisc
  (``tc qdisc add ... netem`` fails with "Specified qdisc kind is unknown."), so the delay comes
  from Toxiproxy, and the adapter under this fault connects through it from the start.

Every fault holds the devstack lock (as :class:`faults.StackFaults` does) and is healed in a
``finally``: a test interrupted mid-fault leaves the network whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from faults import HOLD, FaultTimes, OutageReport, StackFaults, open_target, run_outage

__all__ = [
    "HOSTS_CLUSTER_SKIP",
    "LATENCY_MS",
    "LOSS_PERCENT",
    "NETWORK_FAULTS",
    "HostCut",
    "NetworkFaults",
    "Toxiproxy",
    "network_fault_run",
]

#: One-way delay added to every reply, and the share of packets dropped, under "latency+loss".
LATENCY_MS = 50
LOSS_PERCENT = 5
#: How long latency and loss last: long enough for a few hundred calls to cross them.
DEGRADE_HOLD = 3 * HOLD
#: Fault kinds, with the name each has in the measured table.
NETWORK_FAULTS = {
    "partition": "partition",
    "blackhole": "blackhole",
    "latency": f"latency {LATENCY_MS} ms + loss {LOSS_PERCENT}%",
}
#: The stack-outputs key of each server backend's URL.
URL_KEYS = {
    "postgres": "postgres_url",
    "redis": "redis_url",
    "typesense": "typesense_url",
    "neo4j": "neo4j_url",
}
#: Toxiproxy listens on the backend's own port plus this, on the host's address.
PROXY_OFFSET = 10
API_OFFSET = 20


class NetworkFaults:
    """Partition, blackhole and degrade the simulated host a backend runs on, lock held."""

    def __init__(self, control: StackFaults) -> None:
        self.control = control
        self.stack = control.stack
        self.network = control.stack.network
        self._faulted: set[str] = set()

    def host_of(self, backend: str) -> str:
        """The simulated host the placement puts ``backend`` on."""
        return str(self.network.plan.host_for(backend).name)

    async def _hold(self, host: str, inject: Callable[[], None], hold: float) -> FaultTimes:
        self._faulted.add(host)
        down = time.monotonic()
        try:
            await self.control._run(inject)
            await asyncio.sleep(hold)
        finally:
            await self.control._run(self.network.heal, host)
            self._faulted.discard(host)
        return FaultTimes(down, time.monotonic())

    async def partition(self, backend: str, hold: float = HOLD) -> FaultTimes:
        host = self.host_of(backend)
        return await self._hold(host, lambda: self.network.partition(host), hold)

    async def blackhole(self, backend: str, hold: float = HOLD) -> FaultTimes:
        host = self.host_of(backend)
        return await self._hold(host, lambda: self.network.blackhole(host), hold)

    async def degrade(
        self, backend: str, toxiproxy: Toxiproxy, hold: float = DEGRADE_HOLD
    ) -> FaultTimes:
        """Latency on the backend's proxy and packet loss on its host, for ``hold`` s."""
        host = self.host_of(backend)

        def inject() -> None:
            self.network.degrade(host, LOSS_PERCENT)

        await toxiproxy.add_latency(backend, LATENCY_MS)
        try:
            return await self._hold(host, inject, hold)
        finally:
            await toxiproxy.remove_latency(backend)

    def close(self) -> None:
        """Heal whatever a test interrupted mid-fault left faulted."""
        for host in sorted(self._faulted):
            self.network.heal(host)
        self._faulted.clear()


@dataclass
class Toxiproxy:
    """A ``toxiproxy-server`` inside one simulated host's namespace, and its HTTP API."""

    process: asyncio.subprocess.Process
    api: str
    address: str

    @classmethod
    @contextlib.asynccontextmanager
    async def on_host(cls, stack: Any, backend: str) -> AsyncIterator[Toxiproxy]:
        from mas_devstack._runtime import toxiproxy_server

        network = stack.network
        host = network.plan.host_for(backend)
        port = stack.ports.postgres + API_OFFSET
        command, _ = network.wrap(
            host, [str(toxiproxy_server()), "-host", host.address, "-port", str(port)], {}
        )
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        proxy = cls(process, f"http://{host.address}:{port}", host.address)
        try:
            await proxy._wait_ready()
            yield proxy
        finally:
            if process.returncode is None:
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def _wait_ready(self, within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(trust_env=False, timeout=1.0) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.api}/version")).status_code == 200:
                        return
                if self.process.returncode is not None or time.monotonic() > deadline:
                    raise AssertionError(f"toxiproxy-server did not answer at {self.api}")
                await asyncio.sleep(0.1)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        async with httpx.AsyncClient(base_url=self.api, trust_env=False, timeout=10) as client:
            response = await client.request(method, path, json=body)
        assert response.status_code in (200, 201, 204), f"{method} {path}: {response.text}"

    async def proxy(self, backend: str, outputs: dict[str, Any]) -> dict[str, Any]:
        """Put a proxy in front of ``backend``; return outputs whose URL goes through it."""
        key = URL_KEYS[backend]
        parts = urlsplit(outputs[key])
        assert parts.hostname == self.address and parts.port is not None
        listen = parts.port + PROXY_OFFSET
        await self._call(
            "POST",
            "/proxies",
            {
                "name": backend,
                "listen": f"{self.address}:{listen}",
                "upstream": f"{self.address}:{parts.port}",
                "enabled": True,
            },
        )
        netloc = parts.netloc.rsplit(":", 1)[0] + f":{listen}"
        return {**outputs, key: urlunsplit(parts._replace(netloc=netloc))}

    async def add_latency(self, backend: str, ms: int) -> None:
        """Delay every reply (downstream: server to client) by ``ms`` milliseconds."""
        await self._call(
            "POST",
            f"/proxies/{backend}/toxics",
            {
                "name": "latency",
                "type": "latency",
                "stream": "downstream",
                "toxicity": 1.0,
                "attributes": {"latency": ms, "jitter": 0},
            },
        )

    async def remove_latency(self, backend: str) -> None:
        await self._call("DELETE", f"/proxies/{backend}/toxics/latency")


async def network_fault_run(
    faults: NetworkFaults, outputs: dict[str, Any], backend: str, fault: str
) -> OutageReport:
    """One network fault of kind ``fault`` (see :data:`NETWORK_FAULTS`) on ``backend``."""
    name = NETWORK_FAULTS[fault]
    async with faults.control.locked():
        if fault == "latency":
            async with Toxiproxy.on_host(faults.stack, backend) as toxiproxy:
                through = await toxiproxy.proxy(backend, outputs)
                async with open_target(backend, through) as target:
                    return await run_outage(
                        target, lambda: faults.degrade(backend, toxiproxy), name
                    )
        inject: Callable[[], Awaitable[FaultTimes]] = {
            "partition": lambda: faults.partition(backend),
            "blackhole": lambda: faults.blackhole(backend),
        }[fault]
        async with open_target(backend, outputs) as target:
            return await run_outage(target, inject, name)


#: Why a cluster test that cuts a simulated host off skips on loopback.
HOSTS_CLUSTER_SKIP = (
    "needs the cluster on simulated hosts: scripts/test-cluster --hosts "
    "(mas-devstack up --hosts Pulumi.dev.yaml --topology cluster)"
)


class HostCut:
    """The simulated host of a cluster node, cut off (its link down, as
    :meth:`NetworkFaults.partition`) by a cluster failover test, and healed.

    The caller holds the devstack lock (:meth:`faults.StackFaults.locked`). :meth:`heal` is
    idempotent: a test calls it when its scenario reconnects the host, and again in a
    ``finally``, so an interrupted test leaves the network whole.
    """

    def __init__(self, control: StackFaults, address: str) -> None:
        import pytest

        if control.stack.plan is None:
            pytest.skip(HOSTS_CLUSTER_SKIP)
        self.control = control
        self.network = control.stack.network
        self.host = str(self.network.plan.host_at(address).name)
        self.address = address
        self.cut_at: float | None = None

    def __repr__(self) -> str:
        return f"HostCut(host={self.host!r}, cut={self.cut_at is not None})"

    async def cut(self) -> float:
        """Take the host's link down; returns the moment (monotonic seconds)."""
        self.cut_at = time.monotonic()
        await self.control._run(self.network.partition, self.host)
        return self.cut_at

    async def heal(self) -> None:
        """Reconnect the host (nothing happens when it is not cut)."""
        if self.cut_at is not None:
            await self.control._run(self.network.heal, self.host)
            self.cut_at = None
