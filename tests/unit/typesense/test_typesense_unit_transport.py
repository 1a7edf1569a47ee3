"""The adapter's aiohttp transport against a real HTTP server on loopback (aiohttp's own).

What the adapter relies on: the request arrives as httpx built it (the encoded path untouched,
the query, the headers, the body), the answer comes back as an ``httpx.Response`` decoded once,
and every failure is the httpx exception httpcore raises for the same event, so the adapter's
one error mapping classifies it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web

from mas_storage import StorageConnectionError, StorageTimeoutError, certificate_error
from mas_storage_typesense import TypesenseAdapter
from mas_storage_typesense._transport import AiohttpTransport, Client

KEY = "unit-test-key-5e1b7d"
TIMEOUT = httpx.Timeout(5.0)


class Server:
    """An aiohttp server on 127.0.0.1 whose one handler a test sets."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.handler: Callable[[web.Request], Any] = self.echo
        self.url = ""

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "headers": request.headers.copy(),  # case-insensitive
                "body": body,
            }
        )
        return web.json_response({"ok": True, "path": request.raw_path}, status=201)

    async def dispatch(self, request: web.Request) -> Any:
        return await self.handler(request)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", srv.dispatch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    srv.url = f"http://127.0.0.1:{port}"
    yield srv
    await runner.cleanup()


def client_for(url: str, **transport: Any) -> Client:
    return Client(
        base_url=url,
        headers={"X-TYPESENSE-API-KEY": KEY},
        timeout=TIMEOUT,
        transport=AiohttpTransport(**transport),
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_request_arrives_as_httpx_built_it(server: Server) -> None:
    client = client_for(server.url)
    try:
        response = await client.request(
            "POST",
            "/collections/c/documents/a%2Fb%2E%2E",
            params={"action": "upsert", "q": "dark mode"},
            content='{"id":"x"}',
            headers={"Content-Type": "application/json"},
        )
    finally:
        await client.aclose()
    assert response.status_code == 201
    assert response.json()["ok"] is True
    assert response.reason_phrase == "Created"
    seen = server.seen[0]
    assert seen["method"] == "POST"
    # The encoded id is not decoded, normalised or resolved on the way (no ".." step).
    assert seen["raw_path"] == "/collections/c/documents/a%2Fb%2E%2E?action=upsert&q=dark+mode"
    assert seen["headers"]["X-TYPESENSE-API-KEY"] == KEY
    assert seen["headers"]["Content-Type"] == "application/json"
    assert seen["headers"]["Accept-Encoding"] == "gzip, deflate"  # what httpx decodes
    assert seen["body"] == b'{"id":"x"}'


async def test_keep_alive_reuses_one_connection(server: Server) -> None:
    peers: set[Any] = set()

    async def where(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        return web.json_response({})

    server.handler = where
    client = client_for(server.url)
    try:
        for _ in range(5):
            assert (await client.request("GET", "/health")).status_code == 200
    finally:
        await client.aclose()
    assert len(peers) == 1


async def test_a_compressed_answer_is_decoded_once(server: Server) -> None:
    payload = json.dumps({"content": "ü" * 100}).encode()

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(payload),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    server.handler = gzipped
    client = client_for(server.url)
    try:
        response = await client.request("GET", "/x")
    finally:
        await client.aclose()
    assert response.content == payload


async def test_refused_connection_is_connect_error_after_the_retries() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    for retries, at_least in ((0, 0.0), (2, 0.5)):  # httpcore's backoff: 0 s, then 0.5 s
        client = client_for(url, retries=retries)
        began = time.monotonic()
        try:
            with pytest.raises(httpx.ConnectError, match="Cannot connect"):
                await client.request("GET", "/health")
        finally:
            await client.aclose()
        assert time.monotonic() - began >= at_least


async def test_slow_answer_is_read_timeout(server: Server) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    server.handler = slow
    client = client_for(server.url)
    began = time.monotonic()
    try:
        with pytest.raises(httpx.ReadTimeout):
            await client.request("GET", "/x", timeout=httpx.Timeout(0.2))
    finally:
        await client.aclose()
    assert time.monotonic() - began < 1.5


async def test_dropped_connection_is_remote_protocol_error(server: Server) -> None:
    async def drop(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0.1)
        return web.json_response({})

    server.handler = drop
    client = client_for(server.url)
    try:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.request("GET", "/x")
    finally:
        await client.aclose()


async def test_closed_client_refuses_and_closes_once(server: Server) -> None:
    client = client_for(server.url)
    await client.request("GET", "/x")
    transport = client._transport
    assert isinstance(transport, AiohttpTransport)
    session = transport._session
    await client.aclose()
    await client.aclose()
    assert client.is_closed and session is not None and session.closed
    with pytest.raises(RuntimeError, match="closed"):
        await client.request("GET", "/x")


async def test_tls_context_reaches_the_connector() -> None:
    context = ssl.create_default_context()
    session = AiohttpTransport(verify=context)._new_session()
    try:
        assert session.connector is not None
        assert session.connector._ssl is context  # type: ignore[attr-defined]
    finally:
        await session.close()


def test_aiohttps_certificate_error_is_an_untrusted_certificate() -> None:
    """aiohttp's ``ClientConnectorCertificateError`` subclasses ``ssl.SSLCertVerificationError``
    without its attributes; the core finds the real one, its cause (was an AttributeError)."""
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] verify failed")
    cause.verify_code = 20
    cause.verify_message = "unable to get local issuer certificate"
    key = SimpleNamespace(host="127.0.0.1", port=8108, is_ssl=True, ssl=True)
    wrapped = aiohttp.ClientConnectorCertificateError(key, cause)  # type: ignore[arg-type]
    wrapped.__cause__ = cause
    outer = httpx.ConnectError(str(wrapped))
    outer.__cause__ = wrapped
    error = certificate_error(outer, "typesense at 127.0.0.1:8108")
    assert isinstance(error, StorageConnectionError)
    assert "not trusted" in str(error)
    assert "unable to get local issuer certificate" in str(error)


async def test_adapter_maps_the_transport_failures(server: Server) -> None:
    """Through the adapter: refused -> StorageConnectionError, slow -> StorageTimeoutError."""
    refused = TypesenseAdapter(
        {"url": f"http://127.0.0.1:{closed_port()}", "api_key": KEY, "retries": 0}
    )
    with pytest.raises(StorageConnectionError, match="Cannot reach Typesense") as info:
        await refused.connect()
    assert KEY not in str(info.value)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"ok": True})

    server.handler = slow
    frozen = TypesenseAdapter({"url": server.url, "api_key": KEY, "timeout": 0.2})
    with pytest.raises(StorageTimeoutError, match="timed out"):
        await frozen.connect()


async def test_behind_an_httpx_client_too(server: Server) -> None:
    """The transport interface: ``httpx.AsyncClient(transport=AiohttpTransport())`` works."""
    async with httpx.AsyncClient(
        base_url=server.url, transport=AiohttpTransport(), trust_env=False
    ) as client:
        response = await client.get("/a%2E%2E/b", params={"filter_by": "x:=`y` && z:[1,2]"})
    assert response.status_code == 201
    assert response.json()["ok"] is True
    assert response.request.url.raw_path.startswith(b"/a%2E%2E/b?")
    assert server.seen[0]["raw_path"].startswith("/a%2E%2E/b?filter_by=")
