"""Failover over the nodes of a Typesense cluster (Raft), on the adapter's one client.

What Typesense's own clients (typesense-python's ``NodeManager``, typesense-js's ``ApiCall``)
do, kept to what a storage adapter may promise:

* **Health marking.** A node that fails (connection refused or dropped, a timeout, HTTP 503
  "Not Ready or Lagging") is marked unhealthy and passed over for
  ``healthcheck_interval_seconds``; then a request tries it again (the request is the health
  check, as in those clients), and an answer marks it healthy.
* **Order, not rotation.** Every request goes to the first healthy node of the configured order
  (``url``, then ``nodes``: the clients' ``nearest_node``, then their ``nodes``) and stays there
  until it fails. The clients rotate round-robin instead; staying keeps one node's keep-alive
  connections warm and, above all, keeps reads monotonic: a Typesense follower applies a write
  up to one Raft heartbeat (0.5 s, measured here) after the leader acknowledged it, so rotating
  reads over nodes that lag by different amounts can go back in time between two calls.
* **Retry on the next node**, at most ``num_retries`` times, ``retry_interval_seconds`` apart,
  and within the call's ``timeout`` (the whole call, so a failure stays bounded): a read or a
  keyed upsert after any failure (sending it twice changes nothing); any other write only when
  it provably reached no server: the connection was refused or never opened, the node answered
  503 (refused before processing), or a follower had no leader to forward it to. The clients
  retry every request; a ``store`` (create) or a ``delete`` retried after a dropped answer could
  report "exists" or "not found" for what the first attempt did.

A single node costs what it cost before this module: the adapter sends to its ``base_url``
directly, with the transport's connect retries, and none of this runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

from ._errors import leader_lost, no_leader
from ._transport import Client

__all__ = ["Failover", "Node"]

logger = logging.getLogger("mas_storage_typesense")

#: Transport failures before any byte of the request left: safe to send anywhere again.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout)
#: A retry with less time left than this is not worth sending.
_MIN_ATTEMPT_S = 0.05


class Node:
    """One node: its base URL and its health, as this client has seen it."""

    __slots__ = ("failed_at", "healthy", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self.healthy = True
        self.failed_at = 0.0  # monotonic time it was last marked unhealthy

    def __repr__(self) -> str:
        return f"Node({self.url!r}, {'healthy' if self.healthy else 'unhealthy'})"


class Failover:
    """Send one request to the first healthy node, and on to the next when it fails.

    ``urls`` in order of preference; the other arguments are the settings of the same names
    (``timeout`` is the whole call's budget, retries included).
    """

    def __init__(
        self,
        urls: tuple[str, ...],
        *,
        timeout: float,
        connect_timeout: float,
        num_retries: int,
        retry_interval: float,
        healthcheck_interval: float,
    ) -> None:
        self.nodes = tuple(Node(url) for url in urls)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.num_retries = num_retries
        self.retry_interval = retry_interval
        self.healthcheck_interval = healthcheck_interval

    def pick(self) -> Node:
        """The first node that is healthy or due for a new try; else the one that failed
        longest ago (every node failed recently: one of them may be back)."""
        first = self.nodes[0]
        if first.healthy:
            return first
        now = time.monotonic()
        for node in self.nodes:
            if node.healthy or now - node.failed_at >= self.healthcheck_interval:
                return node
        return min(self.nodes, key=lambda node: node.failed_at)

    def mark_down(self, node: Node, why: str) -> None:
        node.failed_at = time.monotonic()
        if node.healthy:
            node.healthy = False
            logger.warning(
                "Typesense node %s marked unhealthy for %gs: %s",
                node.url,
                self.healthcheck_interval,
                why,
            )

    def mark_up(self, node: Node) -> None:
        node.healthy = True
        logger.info("Typesense node %s answers again: marked healthy", node.url)

    async def send(
        self,
        client: Client,
        method: str,
        path: str,
        idempotent: bool,
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        """The first usable answer; the last failure's answer (or exception) when every try
        failed or the failure may not be retried. ``path`` starts with ``/``."""
        started = time.monotonic()
        attempt = 0
        while True:
            node = self.pick()
            try:
                response = await client.request(method, node.url + path, **kwargs)
            except httpx.PoolTimeout:  # an injected httpx transport's own pool is full
                raise  # no node's fault, none to move to
            except httpx.TransportError as exc:
                self.mark_down(node, f"{type(exc).__name__}: {exc}")
                may_retry = idempotent or isinstance(exc, _UNSENT)
                failure: httpx.Response | httpx.TransportError = exc
            else:
                if response.status_code < 500:
                    if not node.healthy:
                        self.mark_up(node)
                    return response
                if response.status_code == 503:  # "Not Ready or Lagging": refused unprocessed
                    self.mark_down(node, "HTTP 503 (not ready, or lagging behind the leader)")
                    may_retry = True
                elif no_leader(response):  # refused before forwarding: nothing applied
                    # This node sees no leader; another may (it could be cut off from them).
                    self.mark_down(node, "HTTP 500: it knows no Raft leader")
                    may_retry = True
                elif leader_lost(response):  # the forward broke off: it may have been applied
                    self.mark_down(node, "HTTP 500: its forward to the Raft leader failed")
                    may_retry = idempotent
                else:
                    return response  # the server's own error: an answer, not a node failure
                failure = response
            attempt += 1
            left = started + self.timeout - time.monotonic() - self.retry_interval
            if not may_retry or attempt > self.num_retries or left < _MIN_ATTEMPT_S:
                if isinstance(failure, httpx.Response):
                    return failure
                failure.add_note(
                    f"{attempt} attempt(s) over {len(self.nodes)} Typesense nodes; "
                    f"unhealthy now: {sum(not n.healthy for n in self.nodes)}"
                )
                raise failure
            await asyncio.sleep(self.retry_interval)
            kwargs = {
                **kwargs,
                "timeout": httpx.Timeout(left, connect=min(self.connect_timeout, left)),
            }
