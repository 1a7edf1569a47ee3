"""Server mode's TLS and read-only key, with the client mocked (issue 18).

What qdrant-client receives: httpx's ``verify`` (the core's verified context trusting
``tls_ca``), gRPC's ``root_certificates``; the read-only key instead of the api-key for a
reader, whose ``connect()`` creates nothing. A real Qdrant server is not available in CI; the
by-hand check against one is in docs/security.md.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import pytest
import trustme

from mas_storage import StorageDataError
from mas_storage_qdrant import QdrantAdapter

HTTPS = "https://127.0.0.1:6333"


@pytest.fixture(scope="module")
def ca_pem() -> str:
    return trustme.CA().cert_pem.bytes().decode()


async def test_https_passes_a_verified_context_trusting_tls_ca(
    fake_qdrant: Any, api_key: str, ca_pem: str
) -> None:
    qa = QdrantAdapter({"url": HTTPS, "api_key": api_key, "tls_ca": ca_pem, "collection_name": "u"})
    await qa.connect()
    context = fake_qdrant.kwargs["verify"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in context.get_ca_certs()] == [
        c["subject"] for c in ssl.create_default_context(cadata=ca_pem).get_ca_certs()
    ]
    assert "grpc_options" not in fake_qdrant.kwargs
    await qa.disconnect()


async def test_grpc_gets_the_ca_as_root_certificates(
    fake_qdrant: Any, api_key: str, ca_pem: str
) -> None:
    config = {"url": HTTPS, "api_key": api_key, "tls_ca": ca_pem, "prefer_grpc": True}
    qa = QdrantAdapter({**config, "collection_name": "u"})
    await qa.connect()
    assert fake_qdrant.kwargs["grpc_options"] == {"root_certificates": ca_pem.encode()}
    await qa.disconnect()


async def test_plain_http_gets_no_tls_options(
    fake_qdrant: Any, server_config: dict[str, Any]
) -> None:
    qa = QdrantAdapter(server_config)
    await qa.connect()
    assert "verify" not in fake_qdrant.kwargs
    await qa.disconnect()


async def test_the_url_decides_a_ca_beside_plain_http_adds_nothing(
    fake_qdrant: Any, api_key: str, ca_pem: str
) -> None:
    qa = QdrantAdapter({"url": "http://127.0.0.1:6333", "api_key": api_key, "tls_ca": ca_pem})
    await qa.connect()
    assert "verify" not in fake_qdrant.kwargs
    await qa.disconnect()


def test_insecure_beside_plain_http_is_refused(api_key: str) -> None:
    with pytest.raises(StorageDataError, match="tls_insecure is set but the connection is"):
        QdrantAdapter({"url": "http://127.0.0.1:6333", "api_key": api_key, "tls_insecure": True})


def test_insecure_with_grpc_is_refused(api_key: str) -> None:
    with pytest.raises(StorageDataError, match="gRPC always verifies"):
        QdrantAdapter({"url": HTTPS, "api_key": api_key, "tls_insecure": True, "prefer_grpc": True})


async def test_insecure_switch_verifies_nothing_and_warns(
    fake_qdrant: Any, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    qa = QdrantAdapter({"url": HTTPS, "api_key": api_key, "tls_insecure": True})
    with caplog.at_level(logging.WARNING, logger="mas_storage.tls"):
        await qa.connect()
    context = fake_qdrant.kwargs["verify"]
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
    assert any("QDRANT_TLS_INSECURE" in r.getMessage() for r in caplog.records)
    assert api_key not in caplog.text
    await qa.disconnect()


async def test_a_reader_sends_the_read_only_key_and_creates_nothing(
    fake_qdrant: Any, api_key: str
) -> None:
    read_key = "read-only-key-of-the-server"
    qa = QdrantAdapter(
        {
            "url": HTTPS,
            "api_key": api_key,
            "read_only": True,
            "read_only_api_key": read_key,
            "collection_name": "unit",
        }
    )
    await qa.connect()
    assert fake_qdrant.kwargs["api_key"] == read_key
    client = fake_qdrant.client
    client.get_collection.assert_awaited()
    client.create_collection.assert_not_awaited()
    client.create_payload_index.assert_not_awaited()
    client.collection_exists.assert_not_awaited()
    await qa.disconnect()


async def test_a_writer_never_sends_the_read_only_key(fake_qdrant: Any, api_key: str) -> None:
    config = {
        "url": HTTPS,
        "api_key": api_key,
        "read_only_api_key": "ro-key",
        "collection_name": "u",
    }
    qa = QdrantAdapter(config)
    await qa.connect()
    assert fake_qdrant.kwargs["api_key"] == api_key
    await qa.disconnect()
