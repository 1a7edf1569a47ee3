"""How the tests' own raw driver clients reach the stack: over TLS, trusting the stack's CA.

The adapters read ``tls_ca`` from the outputs themselves. The tests also talk to the servers
with the bare drivers (to look at what a backend holds, to clean up, to inject faults), and
those need the CA too, and often the **admin** credentials (``stack-admin.json``): a bare
client that cleans up or counts keys does what the adapters' least-privileged credentials may
not. One helper per driver, each a no-op on a stack without TLS (``mas-devstack up --no-tls``).

libpq's own ``PGSSLROOTCERT`` is set for the session by ``tests/conftest.py`` (every raw
``psycopg.connect(url)`` then verifies against the CA, as a user's ``psql`` would); the
adapters pass ``sslrootcert`` themselves, which wins over it.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis

from mas_storage import TlsSettings, load_admin_outputs

__all__ = [
    "ca_file",
    "ca_pem",
    "httpx_verify",
    "neo4j_target",
    "raw_redis",
    "ssl_context",
    "typesense_admin_key",
]


def _tls(outputs: Mapping[str, Any]) -> TlsSettings | None:
    ca = outputs.get("tls_ca")
    return TlsSettings.from_config({"tls_ca": ca}) if ca else None


def ca_pem(outputs: Mapping[str, Any]) -> str | None:
    """The stack's CA as PEM text, ``None`` without TLS."""
    tls = _tls(outputs)
    return tls.ca_pem() if tls else None


def ca_file(outputs: Mapping[str, Any]) -> str | None:
    """The stack's CA as a file path (the lab's PEM goes to a private file), ``None`` without."""
    tls = _tls(outputs)
    return tls.ca_file() if tls else None


def ssl_context(outputs: Mapping[str, Any]) -> ssl.SSLContext | None:
    """A verified client context trusting the stack's CA, ``None`` without TLS."""
    tls = _tls(outputs)
    return tls.ssl_context() if tls else None


def httpx_verify(outputs: Mapping[str, Any]) -> ssl.SSLContext | bool:
    """httpx's ``verify=``: the stack's CA, or the default."""
    return ssl_context(outputs) or True


def raw_redis(url: str, outputs: Mapping[str, Any], **options: Any) -> aioredis.Redis:
    """``Redis.from_url`` trusting the stack's CA when the URL is ``rediss://``."""
    if url.startswith("rediss://"):
        options.setdefault("ssl_ca_data", ca_pem(outputs))
    return aioredis.Redis.from_url(url, **options)


def neo4j_target(url: str, outputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(url, driver kwargs)`` for a bare neo4j driver: ``+s`` becomes the plain scheme with
    an ``ssl_context`` trusting the stack's CA (the driver takes a context only with those)."""
    parts = urlsplit(url)
    base, _, suffix = parts.scheme.partition("+")
    if not suffix:
        return url, {}
    context = ssl_context(outputs) or ssl.create_default_context()
    return urlunsplit(parts._replace(scheme=base)), {"ssl_context": context}


def typesense_admin_key(outputs: Mapping[str, Any]) -> str:
    """The admin key (admin outputs) for suites that make and drop their own collections,
    which the adapter's scoped key may not; the outputs' key on a stack without admin file."""
    admin = load_admin_outputs()
    return str(admin.get("typesense_admin_api_key") or outputs["typesense_api_key"])
