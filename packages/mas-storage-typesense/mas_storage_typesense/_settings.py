"""``TypesenseSettings``: every key ``TypesenseAdapter`` reads, declared once.

It is both the settings source (arguments, ``TYPESENSE_*`` variables, the stack outputs
``typesense_url``, ``typesense_nodes`` and ``typesense_api_key``, defaults) and the adapter's
validated config (``adapter.config``). A mapping may use the spec's ``schema`` for
``collection_schema`` (``schema`` is a pydantic name). The README's table is generated from it.

A cluster is ``nodes``: every node's URL, in order of preference. ``url`` and ``nodes`` come
from one source (the core's key groups): ``TYPESENSE_URL`` in the environment names one server
even when the outputs file lists a cluster. :attr:`TypesenseSettings.node_urls` is the order
the adapter tries them in.
"""

from __future__ import annotations

from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mas_storage import Integer, NodeList, Seconds, StackOutput, TlsSettings

from ._schema import DEFAULT_COLLECTION

__all__ = ["DEFAULT_IMPORT_BATCH_SIZE", "TypesenseAdminSettings", "TypesenseSettings"]

#: Documents per import request. Measured on Typesense 0.24.1 (10,000 small facts, loopback):
#: 500 -> ~42k docs/s, 1000 -> ~47k, 2500 -> ~54k, 5000 -> ~56k, 10000 -> ~59k. 2,500 is within
#: a few percent of the best while keeping one request body to a few MB for larger documents.
DEFAULT_IMPORT_BATCH_SIZE = 2500


def _node_url(value: str) -> str:
    """``http(s)://host[:port]`` without a trailing slash, path, query or credentials."""
    value = value.strip().rstrip("/")
    try:
        parts = urlsplit(value)
        ok = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and not (parts.path or parts.query or parts.fragment or parts.username)
            and (parts.port is None or parts.port > 0)  # .port raises for one out of range
        )
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("must be http(s)://host:port")
    return value


class _TypesenseServer(TlsSettings):
    """What every Typesense client of the project shares: the server's URL and its TLS."""

    tls_hint = "https://"

    url: Annotated[str, StackOutput("typesense_url")] = Field(
        "http://127.0.0.1:58108", description="`http(s)://host:port` of the server (https: TLS)"
    )

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        return _node_url(value)

    def uses_tls(self) -> bool:
        return self.url.startswith("https://")


class TypesenseSettings(_TypesenseServer):
    """Typesense (L4 full-text facts)."""

    model_config = SettingsConfigDict(env_prefix="TYPESENSE_")

    nodes: Annotated[NodeList, StackOutput("typesense_nodes")] = Field(
        (),
        description="every node of a Typesense cluster (Raft), `http(s)://host:port` each, in "
        "order of preference (the nearest first): requests go to the first healthy node and fail "
        "over to the next; `url`, when given with it, is tried first (a client's nearest node). "
        "Empty: the one server at `url`",
    )
    api_key: Annotated[SecretStr, StackOutput("typesense_api_key")] = Field(
        min_length=1,
        description="API key; never logged. On the stacks: a key scoped to the adapter's "
        "collections and to document actions (no collection may be created or dropped)",
    )
    collection_name: str = Field(
        DEFAULT_COLLECTION,
        min_length=1,
        description="the collection (default: the schema's name, else semantic_memory)",
    )
    collection_schema: dict[str, Any] | None = Field(
        None,
        description="collection schema used when the collection is created (the spec's "
        "`schema`); unset: the default facts schema",
    )
    timeout: Seconds = Field(
        10.0, description="seconds per request (with `nodes`: per call, its retries included)"
    )
    connect_timeout: Seconds | None = Field(
        None, description="seconds to connect; unset: the smaller of 5 and timeout"
    )
    retries: Integer = Field(
        2,
        ge=0,
        description="connect retries of the HTTP transport, to the one server (with `nodes`: "
        "none; `num_retries` moves on to the next node instead)",
    )
    max_connections: Integer = Field(20, ge=1, description="HTTP connection pool size")
    import_batch_size: Integer = Field(
        DEFAULT_IMPORT_BATCH_SIZE, ge=1, description="documents per import request (store_many)"
    )
    num_retries: Integer = Field(
        3,
        ge=0,
        description="with `nodes`: how many more times a failed request is sent, each time to the "
        "next healthy node, within `timeout`: reads and keyed upserts after any failure, other "
        "writes only when the request never reached a server",
    )
    retry_interval_seconds: Seconds = Field(
        0.1, description="with `nodes`: the pause before a request is sent again"
    )
    healthcheck_interval_seconds: Seconds = Field(
        60.0,
        description="with `nodes`: how long a node that failed is passed over before a request "
        "tries it again (the request is the health check)",
    )

    key_aliases = {"schema": "collection_schema"}
    key_groups = (frozenset({"url", "nodes"}),)

    @classmethod
    def prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Without a collection_name, the schema's name names the collection."""
        schema = data.get("collection_schema")
        if isinstance(schema, dict) and "collection_name" not in data and schema.get("name"):
            data["collection_name"] = schema["name"]
        return data

    @model_validator(mode="after")
    def _derived(self) -> Self:
        schema = self.collection_schema
        if schema is not None and schema.get("name") not in (None, self.collection_name):
            raise ValueError(
                f"collection_schema names collection '{schema.get('name')}' but "
                f"collection_name is '{self.collection_name}'"
            )
        if self.connect_timeout is None:
            object.__setattr__(self, "connect_timeout", min(5.0, self.timeout))
        if self.nodes:
            given = "url" in self.model_fields_set
            ordered = (self.url, *self.nodes) if given else self.nodes
            if len({urlsplit(node).scheme for node in ordered}) != 1:
                raise ValueError(
                    "nodes: every node (and url) must use the same scheme (https: TLS)"
                )
            object.__setattr__(self, "url", ordered[0])
        return self

    @field_validator("nodes")
    @classmethod
    def _node_list(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        nodes = tuple(_node_url(node) for node in value)
        if len(set(nodes)) != len(nodes):
            raise ValueError("a node is listed twice")
        return nodes

    @property
    def node_urls(self) -> tuple[str, ...]:
        """The nodes in the order requests try them: ``url`` (the first of ``nodes`` unless
        given) first, then the other ``nodes``; ``(url,)`` without ``nodes``."""
        return (self.url, *(node for node in self.nodes if node != self.url))


class TypesenseAdminSettings(_TypesenseServer):
    """The admin key's client, for provisioning only (collections, scoped keys): never the
    adapter's. Read from ``TYPESENSE_ADMIN_*``, the **admin** outputs key
    ``typesense_admin_api_key`` (``$MAS_STACK_ADMIN``), and the stack's ``typesense_url`` and
    ``tls_ca``."""

    model_config = SettingsConfigDict(env_prefix="TYPESENSE_ADMIN_")

    api_key: Annotated[SecretStr, StackOutput("typesense_admin_api_key", admin=True)] = Field(
        min_length=1, description="the bootstrap admin key; never logged"
    )
    timeout: Seconds = Field(30.0, description="seconds per request")
