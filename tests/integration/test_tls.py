"""TLS on every networked backend of the stack (issue 18), against the real servers.

* Each server refuses a plaintext connection (its TLS port is the only one).
* Each adapter refuses a certificate from another CA (``tls_ca`` naming a CA that trustme made
  here) with a :class:`StorageConnectionError` that says the server certificate was not
  trusted, with no secret of the stack in its message or its ``repr``.
* Each adapter refuses a certificate for another host: the servers' certificates list their IP
  only, so connecting by the name ``localhost`` (which reaches the same loopback server) is a
  mismatch. Loopback stacks only: a simulated host's server listens on its own address.
* The adapters built from the settings alone (``create_adapter(kind)``) verify against the
  outputs' ``tls_ca``: the process's trust in the stack's CA (``SSL_CERT_FILE``,
  ``PGSSLROOTCERT``, set by ``tests/conftest.py``) is removed first.

Qdrant has no server here (embedded): its adapter's TLS path (qdrant-client over httpx) is
checked against a real TLS server all the same, Typesense's port. The handshake fails before
any HTTP is spoken, which is all these two checks need.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import redis.asyncio as aioredis
import trustme
from neo4j import AsyncGraphDatabase
from neo4j.exceptions import ServiceUnavailable, SessionExpired
from stack_secrets import stack_secrets

from mas_storage import StorageAdapter, StorageConnectionError, create_adapter
from mas_storage_neo4j import Neo4jAdapter
from mas_storage_postgres import PostgresAdapter
from mas_storage_qdrant import QdrantAdapter
from mas_storage_redis import RedisAdapter
from mas_storage_typesense import TypesenseAdapter

UNTRUSTED = "the server certificate was not trusted"
MISMATCH = "the server certificate does not match the host or IP address"


@pytest.fixture(scope="module")
def tls(stack_outputs: dict[str, Any]) -> dict[str, Any]:
    if not stack_outputs.get("tls_ca"):
        pytest.skip("the stack runs without TLS (mas-devstack up --no-tls)")
    return stack_outputs


@pytest.fixture
def no_ambient_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a config names is trusted: the session's CA variables are removed."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)


@pytest.fixture(scope="module")
def other_ca() -> str:
    """A CA that signed nothing of the stack's."""
    return trustme.CA().cert_pem.bytes().decode()


def _configs(
    outputs: dict[str, Any], ca: str
) -> dict[str, tuple[type[StorageAdapter], dict[str, Any]]]:
    return {
        "postgres": (PostgresAdapter, {"url": outputs["postgres_url"], "tls_ca": ca}),
        "redis": (RedisAdapter, {"url": outputs["redis_url"], "tls_ca": ca, "retries": 0}),
        "neo4j": (
            Neo4jAdapter,
            {
                "url": outputs["neo4j_url"],
                "user": outputs["neo4j_user"],
                "password": outputs["neo4j_password"],
                "tls_ca": ca,
            },
        ),
        "typesense": (
            TypesenseAdapter,
            {
                "url": outputs["typesense_url"],
                "api_key": outputs["typesense_api_key"],
                "tls_ca": ca,
            },
        ),
        # A real TLS server (Typesense's) for qdrant-client's https path: see the module doc.
        "qdrant": (
            QdrantAdapter,
            {"url": outputs["typesense_url"], "api_key": "qdrant-key-never-sent", "tls_ca": ca},
        ),
    }


KINDS = ("postgres", "redis", "neo4j", "typesense", "qdrant")


def _to_localhost(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.replace("127.0.0.1", "localhost")))


async def _refused(adapter: StorageAdapter) -> StorageConnectionError:
    with pytest.raises(StorageConnectionError) as caught:
        async with adapter:
            pass
    assert not adapter.is_connected
    return caught.value


def _assert_no_secret(err: BaseException, outputs: dict[str, Any]) -> None:
    text = f"{err} {err!r}"
    for secret in stack_secrets(outputs):
        assert secret not in text


# -- servers refuse plaintext --------------------------------------------------------------------


async def test_postgres_refuses_plaintext(tls: dict[str, Any], stack_admin: dict[str, Any]) -> None:
    """hostssl only in pg_hba.conf: a plaintext connection, even the owner's, has no line."""
    for url in (tls["postgres_url"], stack_admin["postgres_owner_url"]):
        with pytest.raises(psycopg.OperationalError, match="no encryption"):
            await psycopg.AsyncConnection.connect(url, sslmode="disable", connect_timeout=5)


async def test_redis_refuses_plaintext(tls: dict[str, Any]) -> None:
    """``port 0``: the only port speaks TLS; a plaintext PING gets no answer."""
    plain = tls["redis_url"].replace("rediss://", "redis://", 1)
    client = aioredis.Redis.from_url(plain, socket_timeout=5, socket_connect_timeout=5)
    try:
        with pytest.raises((aioredis.ConnectionError, aioredis.TimeoutError)):
            await client.ping()
    finally:
        await client.aclose()


async def test_neo4j_refuses_plaintext(tls: dict[str, Any]) -> None:
    """``server.bolt.tls_level=REQUIRED``: an unencrypted Bolt handshake is dropped."""
    plain = tls["neo4j_url"].replace("bolt+s://", "bolt://", 1)
    auth = (tls["neo4j_user"], tls["neo4j_password"])
    async with AsyncGraphDatabase.driver(plain, auth=auth, connection_timeout=5) as driver:
        with pytest.raises((ServiceUnavailable, SessionExpired)):
            await driver.verify_connectivity()


async def test_typesense_refuses_plaintext(tls: dict[str, Any]) -> None:
    """``--ssl-certificate``: plain HTTP on the API port gets no HTTP answer at all."""
    plain = tls["typesense_url"].replace("https://", "http://", 1)
    headers = {"X-TYPESENSE-API-KEY": tls["typesense_api_key"]}
    async with httpx.AsyncClient(base_url=plain, timeout=5, trust_env=False) as client:
        with pytest.raises(httpx.TransportError):
            await client.get("/collections", headers=headers)


# -- adapters refuse another CA's certificate ----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_certificate_from_another_ca_is_refused(
    kind: str, tls: dict[str, Any], other_ca: str, no_ambient_trust: None
) -> None:
    cls, config = _configs(tls, other_ca)[kind]
    err = await _refused(cls(config))
    assert UNTRUSTED in str(err), str(err)
    assert "tls_ca" in str(err)
    _assert_no_secret(err, tls)


# -- adapters refuse a certificate for another host -----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_certificate_for_another_host_is_refused(
    kind: str, tls: dict[str, Any], no_ambient_trust: None
) -> None:
    if urlsplit(tls["redis_url"]).hostname != "127.0.0.1":
        pytest.skip("loopback stacks only: 'localhost' reaches no simulated host's server")
    cls, config = _configs(tls, tls["tls_ca"])[kind]
    config = {**config, "url": _to_localhost(config["url"])}
    err = await _refused(cls(config))
    assert MISMATCH in str(err), str(err)
    _assert_no_secret(err, tls)


# -- adapters from the settings verify against the outputs' tls_ca --------------------------------


@pytest.fixture
def settings_only(no_ambient_trust: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("POSTGRES_URL", "REDIS_URL", "NEO4J_URL", "TYPESENSE_URL", "QDRANT_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("kind", ["postgres", "redis", "neo4j", "typesense"])
async def test_adapters_from_the_settings_trust_the_outputs_ca(
    kind: str, tls: dict[str, Any], settings_only: None
) -> None:
    async with create_adapter(kind) as adapter:
        assert adapter.config.tls_ca == tls["tls_ca"]  # type: ignore[attr-defined]
        assert adapter.is_connected


async def test_postgres_adapter_connections_are_encrypted(
    tls: dict[str, Any], settings_only: None
) -> None:
    """The server's own view: every backend of the adapter's pool speaks TLS 1.2 or 1.3."""
    async with create_adapter("postgres") as adapter:
        pool = adapter.pool  # type: ignore[attr-defined]
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            )
            assert await cur.fetchone() in (
                (True, "TLSv1.2"),
                (True, "TLSv1.3"),
            )


async def test_insecure_switch_encrypts_without_verifying_and_warns(
    tls: dict[str, Any],
    other_ca: str,
    no_ambient_trust: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``tls_insecure``: the connection works although nothing trusts the server, and every
    connect logs the WARNING naming the variable; the CA named beside it is not used."""
    config = {"url": tls["redis_url"], "tls_insecure": True, "retries": 0}
    with caplog.at_level(logging.WARNING, logger="mas_storage.tls"):
        async with RedisAdapter(config) as adapter:
            await adapter.store({"session_id": "test-tls-insecure", "turn_id": 1, "content": "x"})
            assert await adapter.delete("session:test-tls-insecure:turns")
    warnings = [r.getMessage() for r in caplog.records if r.name == "mas_storage.tls"]
    assert len(warnings) == 1 and "REDIS_TLS_INSECURE" in warnings[0]
    host = urlsplit(tls["redis_url"]).hostname
    assert "verification is OFF" in warnings[0] and f"{host}:" in warnings[0]


def test_the_stack_ca_verifies_its_servers_by_ip(tls: dict[str, Any]) -> None:
    """The servers' certificates carry their IP as a SAN: Python's own verifier agrees."""
    ca: str = tls["tls_ca"]  # a path (the local stack) or the PEM itself (the lab's outputs)
    pem = ca.lstrip().startswith("-----BEGIN")
    context = ssl.create_default_context(**({"cadata": ca} if pem else {"cafile": ca}))
    host, port = urlsplit(tls["typesense_url"]).hostname, urlsplit(tls["typesense_url"]).port
    assert host and port
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as wrapped,
    ):
        sans = wrapped.getpeercert()["subjectAltName"]  # type: ignore[index]
    assert ("IP Address", host) in sans
