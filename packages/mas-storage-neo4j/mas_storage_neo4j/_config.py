"""The adapter's config, parsed and checked once in ``__init__``.

Accepted keys: the spec's ``uri``, ``user``, ``password`` and ``database``; ``url`` (the name
:class:`~mas_storage.Neo4jSettings` and the stack outputs use); credentials embedded in the URL;
and the tuning keys below. Anything malformed raises :class:`~mas_storage.StorageDataError`
naming the key, never echoing the password.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mas_storage import StorageDataError

from ._cypher import ident

__all__ = ["Neo4jConfig", "parse_config"]

_SCHEMES = frozenset({"bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"})


@dataclass(frozen=True)
class Neo4jConfig:
    """What the adapter needs from its config dict."""

    uri: str | None
    user: str
    password: str | None = field(repr=False)
    database: str = "neo4j"
    #: The base label every entity carries (index-backed id lookups, ids unique across labels).
    entity_label: str = "Entity"
    #: Server-side transaction timeout, seconds.
    timeout: float = 10.0
    #: Rows per UNWIND statement in the batch methods.
    batch_size: int = 500
    #: Keyword arguments for ``AsyncGraphDatabase.driver``.
    driver_options: dict[str, Any] = field(default_factory=dict)


def parse_config(cfg: Mapping[str, Any], *, need_credentials: bool = True) -> Neo4jConfig:
    """Check ``cfg``; ``need_credentials=False`` when a driver is injected."""
    uri, user, password = _credentials(cfg)
    if need_credentials and (not uri or not password):
        raise StorageDataError("Neo4j config needs 'uri' (or 'url') and 'password'")
    database = cfg.get("database") or "neo4j"
    if not isinstance(database, str):
        raise StorageDataError("config 'database' must be a string")
    entity_label = cfg.get("entity_label") or "Entity"
    ident(entity_label, "entity_label")
    timeout = _positive(cfg, "timeout", 10.0)
    return Neo4jConfig(
        uri=uri,
        user=user,
        password=password,
        database=database,
        entity_label=entity_label,
        timeout=timeout,
        batch_size=int(_positive(cfg, "batch_size", 500)),
        driver_options={
            # Short bounds: during an outage calls fail within seconds, and the same adapter
            # recovers when the server is back (the pool drops dead connections itself).
            "connection_timeout": _positive(cfg, "connection_timeout", 5.0),
            "connection_acquisition_timeout": _positive(
                cfg, "connection_acquisition_timeout", timeout
            ),
            "max_transaction_retry_time": _positive(cfg, "max_retry_time", 2.0),
            # Callers beyond the pool size wait (up to connection_acquisition_timeout).
            "max_connection_pool_size": int(_positive(cfg, "max_connection_pool_size", 100)),
            "user_agent": "mas-storage-neo4j/0.1",
            # Server notifications ("label does not exist", ...) are logged at WARNING by the
            # driver for every query; off unless asked for.
            "notifications_min_severity": _severity(cfg.get("notifications_min_severity")),
        },
    )


def _credentials(cfg: Mapping[str, Any]) -> tuple[str | None, str, str | None]:
    """``(uri, user, password)``; credentials in the URL's userinfo count, and are stripped."""
    uri = cfg.get("uri") or cfg.get("url")
    user = cfg.get("user")
    password: Any = cfg.get("password")
    if hasattr(password, "get_secret_value"):
        password = password.get_secret_value()
    if user is not None and not isinstance(user, str):
        raise StorageDataError("config 'user' must be a string")
    if password is not None and not isinstance(password, str):
        raise StorageDataError("config 'password' must be a string")
    if uri is None:
        return None, user or "neo4j", password
    if not isinstance(uri, str):
        raise StorageDataError(f"config 'uri' must be a string, got {type(uri).__name__}")
    try:
        parts = urlsplit(uri)
        url_user, url_password, host, port = (
            parts.username,
            parts.password,
            parts.hostname,
            parts.port,
        )
    except ValueError:
        raise StorageDataError("config 'uri' is not a valid URL") from None
    if parts.scheme not in _SCHEMES or not host:
        raise StorageDataError(
            "config 'uri' must be bolt:// or neo4j:// (optionally +s or +ssc) with a host, "
            f"got scheme {parts.scheme!r}"
        )
    if url_user is not None or url_password is not None:
        host = f"[{host}]" if ":" in host else host
        netloc = host if port is None else f"{host}:{port}"
        uri = urlunsplit(parts._replace(netloc=netloc))
    return uri, user or url_user or "neo4j", password or url_password


def _severity(value: Any) -> str:
    if value is None:
        return "OFF"
    if not isinstance(value, str) or value.upper() not in ("OFF", "WARNING", "INFORMATION"):
        raise StorageDataError(
            f"config 'notifications_min_severity' must be OFF, WARNING or INFORMATION, "
            f"got {value!r}"
        )
    return value.upper()


def _positive(cfg: Mapping[str, Any], key: str, default: float) -> float:
    value = cfg.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if isinstance(value, bool) or not number > 0:
        raise StorageDataError(f"config {key!r} must be a positive number, got {value!r}")
    return number
