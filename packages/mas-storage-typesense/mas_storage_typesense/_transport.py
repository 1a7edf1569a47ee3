"""The adapter's HTTP path: httpx's request and response model, sent over aiohttp by default.

Why not ``httpx.AsyncClient`` (measured, ``docs/benchmarks.md``, Typesense section): one
``retrieve`` cost about 950 µs of client CPU through it, and httpx at its best (one client,
keep-alive, ``sniffio`` installed) still about 780 µs. A third of that was a packaging accident:
httpcore 1.0.9 tries ``import sniffio`` at every lock it sets up (four per request) and, since
anyio 4.11 no longer brings sniffio, every one of those imports fails and searches ``sys.path``
again (encode/httpcore#1103). The rest is spread over httpx's and httpcore's per-request
machinery (URL merging and parsing, the cookie jar, anyio cancel scopes, h11's state machine),
with no single switch to turn off. aiohttp does the same request in about a fifth of that CPU.

So the adapter keeps httpx's types (``httpx.Request``, ``httpx.Response``, httpx's exception
classes, ``httpx.AsyncBaseTransport`` for injection: tests pass a ``MockTransport``) and sends
through :class:`AiohttpTransport`, which maps every aiohttp failure to the httpx exception that
httpcore raises for it, so the error mapping (:mod:`._errors`) sees one family. :class:`Client`
is the little of ``httpx.AsyncClient`` the adapter needs: a base URL, default headers and a
timeout per request; no cookies, redirects, auth flows or environment proxies (a database
client wants none of them).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx
import yarl

__all__ = ["AiohttpTransport", "Client"]

#: httpcore's connect-retry backoff: the first retry at once, then 0.5 s, 1 s, 2 s, ...
_BACKOFF_FACTOR = 0.5


def _backoff(attempt: int) -> float:
    return 0.0 if attempt == 1 else _BACKOFF_FACTOR * 2 ** (attempt - 2)


@contextmanager
def _mapped(request: httpx.Request | None) -> Iterator[None]:
    """aiohttp's failures as the httpx exceptions httpcore raises for the same event."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:  # no connection (or pool slot) in time
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except aiohttp.ServerTimeoutError as exc:  # no byte of the answer in time
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:  # refused, unreachable, TLS handshake refused
        raise httpx.ConnectError(str(exc), request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except aiohttp.ClientConnectionError as exc:  # reset, broken pipe, ...
        raise httpx.ReadError(str(exc), request=request) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.InvalidURL(str(exc)) from exc
    except aiohttp.ClientError as exc:
        raise httpx.TransportError(f"{type(exc).__name__}: {exc}", request=request) from exc
    except TimeoutError as exc:  # a timeout aiohttp did not classify
        raise httpx.TimeoutException(str(exc) or "timed out", request=request) from exc


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` transport on one ``aiohttp.ClientSession`` (keep-alive connection pool).

    ``verify`` is what httpx takes: ``True`` (the system's CAs), an ``ssl.SSLContext`` (a
    private CA, a client certificate) or ``False``. ``retries`` retries a connection that could
    not be opened (nothing was sent), with httpcore's backoff. The answer is read whole before
    it is returned: Typesense's answers are JSON documents, read whole anyway. The session is
    made on first use, inside the running loop, as aiohttp requires.
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        retries: int = 0,
        max_connections: int = 100,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self._verify = verify
        self.retries = retries
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            limit_per_host=0,
            keepalive_timeout=self.keepalive_expiry,
            ssl=self._verify,
        )
        # httpx decodes the body by its Content-Encoding; the session passes it on as sent, and
        # asks only for what httpx decodes without extras (aiohttp may offer br or zstd).
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            trust_env=False,
            headers={"Accept-Encoding": "gzip, deflate"},
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.send(
            request.method,
            str(request.url),
            request.headers.multi_items(),
            request.content or None,
            request.extensions.get("timeout", {}),
            request,
        )
        response.request = request
        return response

    async def send(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        body: bytes | None,
        timeout: Mapping[str, float | None],  # noqa: ASYNC109 (httpx's timeout extension)
        request: httpx.Request | None = None,
    ) -> httpx.Response:
        """Send one request (``url`` already encoded; ``timeout`` as ``Timeout.as_dict()``)
        and return the answer read whole: the fast path of :class:`Client`, which builds no
        ``httpx.Request`` (parsing its URL again was a quarter of the CPU per call)."""
        session = self._session
        if session is None or session.closed:
            session = self._session = self._new_session()
        aio_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeout.get("pool"),  # a pool slot and the connection together
            sock_connect=timeout.get("connect"),
            sock_read=timeout.get("read"),
        )
        target = yarl.URL(url, encoded=True)  # encoded by the caller: kept as it is
        attempt = 0
        while True:
            attempt += 1
            try:
                with _mapped(request):
                    async with session.request(
                        method,
                        target,
                        headers=headers,
                        data=body,
                        allow_redirects=False,
                        timeout=aio_timeout,
                    ) as answer:
                        content = await answer.read()
                        return httpx.Response(
                            answer.status,
                            headers=answer.raw_headers,
                            content=content,
                            extensions={
                                "http_version": b"HTTP/1.1",
                                "reason_phrase": (answer.reason or "").encode(),
                            },
                        )
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if attempt > self.retries:
                    raise
                await asyncio.sleep(_backoff(attempt))

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class Client:
    """Sends ``httpx.Request``\\ s through one transport: a base URL, default headers, a timeout.

    ``request(method, url, ...)`` takes a path (joined to ``base_url``) or an absolute URL, and
    returns the response read whole. ``timeout`` (an ``httpx.Timeout``) may be replaced, or
    given per request.
    """

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str],
        timeout: httpx.Timeout,
        transport: httpx.AsyncBaseTransport,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = httpx.Headers(headers)
        self._fields = list(self.headers.multi_items())
        self.timeout = timeout
        self._transport = transport
        self.is_closed = False

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        content: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,  # noqa: ASYNC109 (httpx's per-request timeout)
    ) -> httpx.Response:
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        transport = self._transport
        if isinstance(transport, AiohttpTransport):
            target = self.base_url + url if url.startswith("/") else url
            if params:
                target += "?" + urlencode(params)
            fields = self._fields if headers is None else [*self._fields, *headers.items()]
            body = content.encode() if isinstance(content, str) else content
            if body is not None:
                fields = [*fields, ("Content-Length", str(len(body)))]
            return await transport.send(
                method, target, fields, body or None, (timeout or self.timeout).as_dict()
            )
        merged = self.headers if headers is None else httpx.Headers({**self.headers, **headers})
        request = httpx.Request(
            method,
            self.base_url + url if url.startswith("/") else url,
            params=params,
            content=content,
            headers=merged,
            extensions={"timeout": (timeout or self.timeout).as_dict()},
        )
        response = await transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        """Close the transport and its connections; safe to call twice."""
        if not self.is_closed:
            self.is_closed = True
            await self._transport.aclose()
