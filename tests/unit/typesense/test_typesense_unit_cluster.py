"""TypesenseAdapter over a cluster's nodes (``nodes``): failover by health, retries on the next
node for reads and keyed upserts only, the call's time budget, and one server's unchanged path.

The fake cluster is one in-memory Typesense (``conftest.FakeTypesense``: the replicated state)
behind three node addresses; a test breaks a node by making its address raise or answer what
Typesense 0.24.1 answers in that case (503 "Not Ready or Lagging", 500 "Could not find a
leader.", or the empty 500 of a follower whose forward to the leader broke off).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from conftest import API_KEY, FakeTypesense

from mas_storage import StorageConnectionError, StorageDataError, StorageTimeoutError
from mas_storage_typesense import TypesenseAdapter, TypesenseSettings
from mas_storage_typesense._transport import AiohttpTransport

NODES = ("http://10.0.0.1:8108", "http://10.0.0.2:8108", "http://10.0.0.3:8108")
Fault = Callable[[httpx.Request], httpx.Response]


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def dropped(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")


def not_ready(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, json={"message": "Not Ready or Lagging"})


def no_leader(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, json={"message": "Could not find a leader."})


def forward_broke(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, content=b"")


class FakeCluster:
    """Three node addresses over one fake server; ``faults[node]`` answers for a broken node."""

    def __init__(self, fake: FakeTypesense) -> None:
        self.fake = fake
        self.faults: dict[int, Fault] = {}
        self.sent: list[tuple[int, str, str]] = []  # (node index, method, path)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        origin = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        node = NODES.index(origin)
        self.sent.append((node, request.method, request.url.path))
        fault = self.faults.get(node)
        if fault is not None:
            return fault(request)
        return self.fake(request)

    def nodes_of(self, method: str, part: str) -> list[int]:
        return [n for n, m, path in self.sent if m == method and part in path]


@pytest.fixture
def cluster(fake: FakeTypesense) -> FakeCluster:
    return FakeCluster(fake)


@pytest.fixture
def make_cluster_adapter(cluster: FakeCluster) -> Callable[..., TypesenseAdapter]:
    def make(**config: Any) -> TypesenseAdapter:
        base: dict[str, Any] = {
            "nodes": list(NODES),
            "api_key": API_KEY,
            "collection_name": "facts",
            "retry_interval_seconds": 0.001,
            **config,
        }
        return TypesenseAdapter(base, transport=httpx.MockTransport(cluster))

    return make


@pytest.fixture
async def ts(make_cluster_adapter: Callable[..., TypesenseAdapter]) -> Any:
    adapter = make_cluster_adapter()
    await adapter.connect()
    yield adapter
    await adapter.disconnect()


def fact(doc_id: str) -> dict[str, Any]:
    return {
        "id": doc_id,
        "content": f"fact {doc_id}",
        "session_id": "s-1",
        "fact_type": "test",
        "confidence": 0.5,
    }


# -- settings ----------------------------------------------------------------------------------


def test_nodes_are_tried_in_order_and_url_goes_first() -> None:
    config = {"api_key": "k", "nodes": list(NODES)}
    assert TypesenseSettings.from_config(config).node_urls == NODES
    assert TypesenseSettings.from_config(config).url == NODES[0]
    nearest = TypesenseSettings.from_config({**config, "url": NODES[2]})
    assert nearest.node_urls == (NODES[2], NODES[0], NODES[1])
    lb = TypesenseSettings.from_config({**config, "url": "http://lb.internal:8108"})
    assert lb.node_urls == ("http://lb.internal:8108", *NODES)
    assert TypesenseSettings.from_config({"api_key": "k"}).node_urls == ("http://127.0.0.1:58108",)


@pytest.mark.parametrize(
    ("nodes", "match"),
    [
        ([NODES[0], NODES[0] + "/"], "nodes: a node is listed twice"),
        ([NODES[0], "https://10.0.0.2:8108"], "same scheme"),
        ([NODES[0], "10.0.0.2:8108"], "nodes: must be http"),
        ([NODES[0], "http://10.0.0.2:8108/path"], "nodes: must be http"),
        ([NODES[0], "http://user:pw@10.0.0.2:8108"], "nodes: must be http"),
    ],
)
def test_bad_node_lists_are_refused_naming_the_key(nodes: list[str], match: str) -> None:
    with pytest.raises(StorageDataError, match=match) as info:
        TypesenseAdapter({"api_key": API_KEY, "nodes": nodes})
    assert API_KEY not in str(info.value)


def test_url_and_nodes_come_from_one_source(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outputs list a cluster; ``TYPESENSE_URL`` names one server: that server alone."""
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        '{"typesense_url": "http://10.0.0.1:8108", "typesense_api_key": "k",'
        ' "typesense_nodes": ["http://10.0.0.1:8108", "http://10.0.0.2:8108"]}'
    )
    monkeypatch.chdir(tmp_path)
    for name in ("TYPESENSE_URL", "TYPESENSE_NODES", "TYPESENSE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(outputs))
    assert TypesenseSettings().node_urls == ("http://10.0.0.1:8108", "http://10.0.0.2:8108")
    monkeypatch.setenv("TYPESENSE_URL", "http://192.0.2.7:8108")
    assert TypesenseSettings().node_urls == ("http://192.0.2.7:8108",)
    assert TypesenseSettings(url="http://192.0.2.8:8108").node_urls == ("http://192.0.2.8:8108",)
    monkeypatch.delenv("TYPESENSE_URL")
    monkeypatch.setenv("TYPESENSE_NODES", "http://10.0.0.5:8108,http://10.0.0.6:8108")
    assert TypesenseSettings().node_urls == ("http://10.0.0.5:8108", "http://10.0.0.6:8108")


# -- one server: the path it always had --------------------------------------------------------


async def test_one_server_has_no_failover_and_sends_relative_paths(
    make_adapter: Callable[..., TypesenseAdapter], fake: FakeTypesense
) -> None:
    adapter = make_adapter(nodes=["http://127.0.0.1:61999"])  # a one-node list is one server
    await adapter.connect()
    try:
        assert adapter._failover is None
        await adapter.upsert(fact("one"))
        assert await adapter.retrieve("one") is not None
        assert {str(r.url).split("/collections")[0] for r in fake.requests[-2:]} == {
            "http://127.0.0.1:61999"
        }
    finally:
        await adapter.disconnect()


def test_the_transport_retries_connects_for_one_server_only() -> None:
    one = TypesenseAdapter({"url": NODES[0], "api_key": API_KEY})._new_client()
    many = TypesenseAdapter({"nodes": list(NODES), "api_key": API_KEY})._new_client()
    try:
        assert isinstance(one._transport, AiohttpTransport)
        assert isinstance(many._transport, AiohttpTransport)
        assert one._transport.retries == 2
        assert many._transport.retries == 0
    finally:
        asyncio.run(one.aclose())
        asyncio.run(many.aclose())


# -- failover ----------------------------------------------------------------------------------


async def test_a_refused_node_is_passed_over_and_marked_unhealthy(
    ts: TypesenseAdapter, cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.faults[0] = refused
    cluster.sent.clear()
    with caplog.at_level(logging.WARNING, logger="mas_storage_typesense"):
        assert await ts.upsert(fact("a")) == "a"
    assert cluster.nodes_of("POST", "/documents") == [0, 1]
    assert await ts.retrieve("a") is not None
    assert await ts.store(fact("b")) == "b"
    # Marked unhealthy: later calls go straight to the next node, not to the refused one again.
    assert cluster.nodes_of("GET", "/documents/a") == [1]
    assert cluster.nodes_of("POST", "/documents") == [0, 1, 1]
    assert [r.getMessage() for r in caplog.records] == [
        f"Typesense node {NODES[0]} marked unhealthy for 60s: ConnectError: "
        "[Errno 111] Connection refused"
    ]
    assert cluster.fake.docs["facts"].keys() == {"a", "b"}


async def test_a_node_is_tried_again_after_the_healthcheck_interval(
    make_cluster_adapter: Callable[..., TypesenseAdapter], cluster: FakeCluster
) -> None:
    ts = make_cluster_adapter(healthcheck_interval_seconds=0.2)
    await ts.connect()
    cluster.faults[0] = refused
    await ts.upsert(fact("a"))
    del cluster.faults[0]
    cluster.sent.clear()
    await ts.retrieve("a")
    assert cluster.nodes_of("GET", "/documents/a") == [1]  # still passed over
    await asyncio.sleep(0.25)
    await ts.retrieve("a")
    await ts.retrieve("a")
    assert cluster.nodes_of("GET", "/documents/a") == [1, 0, 0]  # tried, healthy, preferred
    assert all(node.healthy for node in ts._failover.nodes)  # type: ignore[union-attr]
    await ts.disconnect()


async def test_every_node_down_tries_each_then_fails_typed_and_names_the_attempts(
    make_cluster_adapter: Callable[..., TypesenseAdapter], cluster: FakeCluster
) -> None:
    ts = make_cluster_adapter(num_retries=5)
    await ts.connect()
    cluster.faults = dict.fromkeys(range(3), refused)
    cluster.sent.clear()
    with pytest.raises(StorageConnectionError) as info:
        await ts.retrieve("a")
    assert cluster.nodes_of("GET", "/documents/a") == [0, 1, 2, 0, 1, 2]  # 1 + 5 retries
    assert "Cannot reach Typesense at http://10.0.0.3:8108" in str(info.value)
    assert "6 attempt(s) over 3 Typesense nodes; unhealthy now: 3" in str(info.value)
    assert API_KEY not in str(info.value)
    # Every node failed recently: the one that failed longest ago is tried (it may be back).
    del cluster.faults[0]
    assert await ts.retrieve("a") is None
    assert cluster.nodes_of("GET", "/documents/a")[-1] == 0
    await ts.disconnect()


@pytest.mark.parametrize(
    ("fault", "reason"),
    [(not_ready, "503 not ready"), (no_leader, "no leader"), (refused, "refused")],
)
async def test_a_write_that_reached_no_server_is_sent_again_whatever_it_is(
    ts: TypesenseAdapter, cluster: FakeCluster, fault: Fault, reason: str
) -> None:
    """``store`` (create) and ``delete`` are not idempotent; they are retried only when the
    node refused them unprocessed."""
    cluster.faults[0] = fault
    assert await ts.store(fact("c")) == "c"
    assert await ts.delete("c") is True
    assert "c" not in cluster.fake.docs["facts"]


def heal(ts: TypesenseAdapter) -> None:
    """Forget what the adapter learnt of its nodes' health (node 0 is tried first again)."""
    for node in ts._failover.nodes:  # type: ignore[union-attr]
        node.healthy = True


@pytest.mark.parametrize("fault", [read_timeout, dropped, forward_broke])
async def test_a_write_that_may_have_landed_is_retried_only_when_keyed(
    ts: TypesenseAdapter, cluster: FakeCluster, fault: Fault
) -> None:
    cluster.faults[0] = fault
    cluster.sent.clear()
    with pytest.raises((StorageConnectionError, StorageTimeoutError)):
        await ts.store(fact("d"))  # create: a second send could answer "exists"
    assert cluster.nodes_of("POST", "/documents") == [0]
    heal(ts)
    with pytest.raises((StorageConnectionError, StorageTimeoutError)):
        await ts.delete("d")  # a second send could answer "not found"
    assert cluster.nodes_of("DELETE", "/documents/d") == [0]
    heal(ts)
    assert await ts.upsert(fact("d")) == "d"  # keyed: sent again, to the next node
    assert cluster.nodes_of("POST", "/documents") == [0, 0, 1]
    heal(ts)
    assert await ts.store_many([fact("e"), fact("f")]) == ["e", "f"]  # an upsert import: keyed
    assert cluster.nodes_of("POST", "/import") == [0, 1]
    assert cluster.fake.docs["facts"].keys() == {"d", "e", "f"}


async def test_an_import_that_creates_is_not_sent_twice(
    ts: TypesenseAdapter, cluster: FakeCluster
) -> None:
    cluster.faults[0] = forward_broke
    cluster.sent.clear()
    with pytest.raises(StorageConnectionError, match="no reachable Raft leader"):
        await ts.store_many([fact("g")], action="create")
    assert cluster.nodes_of("POST", "/import") == [0]


async def test_reads_fail_over_on_every_kind_of_node_failure(
    ts: TypesenseAdapter, cluster: FakeCluster
) -> None:
    await ts.upsert(fact("h"))
    for fault in (refused, read_timeout, dropped, not_ready):
        for node in ts._failover.nodes:  # type: ignore[union-attr]
            node.healthy = True
        cluster.faults[0] = fault
        assert (await ts.retrieve("h") or {}).get("id") == "h", fault.__name__
        assert await ts.search({"q": "fact", "query_by": "content"})


async def test_a_server_error_is_an_answer_not_a_node_failure(
    ts: TypesenseAdapter, cluster: FakeCluster
) -> None:
    cluster.faults[0] = lambda request: httpx.Response(500, json={"message": "disk full"})
    cluster.sent.clear()
    with pytest.raises(Exception, match="disk full"):
        await ts.retrieve("x")
    assert cluster.nodes_of("GET", "/documents/x") == [0]
    assert all(node.healthy for node in ts._failover.nodes)  # type: ignore[union-attr]


async def test_the_whole_call_with_its_retries_stays_within_the_timeout(
    make_cluster_adapter: Callable[..., TypesenseAdapter], cluster: FakeCluster
) -> None:
    """Each attempt on a slow failing node takes 0.15 s; retries stop once ``timeout`` (0.5 s)
    would be passed, and later attempts get what is left of it as their own timeout."""
    timeouts: list[float] = []

    async def slow_then_refused(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"]["read"])
        await asyncio.sleep(0.15)
        raise httpx.ConnectError("refused late", request=request)

    class Slow(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return await slow_then_refused(request)

    config = {"nodes": list(NODES), "api_key": API_KEY, "timeout": 0.5, "num_retries": 50}
    ts = TypesenseAdapter({**config, "retry_interval_seconds": 0.01}, transport=Slow())
    ts._client = ts._new_client()
    ts._connected = True
    began = time.monotonic()
    with pytest.raises(StorageConnectionError):
        await ts.retrieve("y")
    took = time.monotonic() - began
    assert took < 0.5 + 0.15 + 0.25, took  # the fake ignores a timeout: one attempt may overrun
    assert 2 <= len(timeouts) <= 4, timeouts
    assert timeouts[0] == 0.5 and all(t < 0.5 for t in timeouts[1:]), timeouts
    await ts.disconnect()


async def test_no_retries_means_one_attempt(
    make_cluster_adapter: Callable[..., TypesenseAdapter], cluster: FakeCluster
) -> None:
    ts = make_cluster_adapter(num_retries=0)
    await ts.connect()
    cluster.faults[0] = refused
    cluster.sent.clear()
    with pytest.raises(StorageConnectionError):
        await ts.retrieve("z")
    assert await ts.retrieve("z") is None  # the next call goes to the next node
    assert cluster.nodes_of("GET", "/documents/z") == [0, 1]
    await ts.disconnect()


async def test_connect_succeeds_through_any_healthy_node(
    make_cluster_adapter: Callable[..., TypesenseAdapter], cluster: FakeCluster
) -> None:
    cluster.faults[0] = refused
    cluster.faults[1] = not_ready
    ts = make_cluster_adapter()
    await ts.connect()
    assert ts.is_connected
    assert Counter(n for n, _, path in cluster.sent if path == "/health") == {0: 1, 1: 1, 2: 1}
    await ts.disconnect()


async def test_connect_fails_typed_when_no_node_is_ready(
    make_cluster_adapter: Callable[..., TypesenseAdapter], cluster: FakeCluster
) -> None:
    cluster.faults = dict.fromkeys(range(3), not_ready)
    ts = make_cluster_adapter()
    with pytest.raises(StorageConnectionError, match="not ready"):
        await ts.connect()
    assert not ts.is_connected and ts._failover is None


async def test_the_client_pool_being_full_is_not_a_node_failure(
    make_cluster_adapter: Callable[..., TypesenseAdapter], cluster: FakeCluster
) -> None:
    ts = make_cluster_adapter()
    await ts.connect()

    def pool_full(request: httpx.Request) -> httpx.Response:
        raise httpx.PoolTimeout("pool full", request=request)

    cluster.faults[0] = pool_full
    cluster.sent.clear()
    with pytest.raises(StorageTimeoutError):
        await ts.retrieve("p")
    assert cluster.nodes_of("GET", "/documents/p") == [0]
    assert all(node.healthy for node in ts._failover.nodes)  # type: ignore[union-attr]
    await ts.disconnect()
