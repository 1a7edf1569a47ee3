"""``QdrantSettings``: every key ``QdrantAdapter`` reads, declared once.

It is both the settings source (arguments, ``QDRANT_*`` variables, the stack outputs
``qdrant_url``, ``qdrant_api_key`` and ``qdrant_path``, defaults) and the adapter's validated
config (``adapter.config``). The README's table is generated from it.

Mode: **server** when ``url`` or ``host`` is set (the lab), else **embedded** at ``path`` or
``location=":memory:"`` (the local stack, CI). The server wins when both are given:
``path`` always has a default, and setting ``QDRANT_URL`` must be enough to switch to the server.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mas_storage import Integer, Seconds, StackOutput, TlsSettings

__all__ = ["DEFAULT_BATCH_SIZE", "QdrantSettings"]

#: Points per upsert request in ``store_many`` (see the package README for the measurement).
DEFAULT_BATCH_SIZE = 128
_DISTANCES = ("Cosine", "Euclid", "Dot", "Manhattan")


class QdrantSettings(TlsSettings):
    """Qdrant (L3 episodic vectors): server mode with ``url``, embedded mode with ``path``."""

    model_config = SettingsConfigDict(env_prefix="QDRANT_")
    tls_hint = "https:// (or https: true with host)"

    url: Annotated[str | None, StackOutput("qdrant_url")] = Field(
        None, min_length=1, description="server mode: `http(s)://host:port` (wins over path)"
    )
    host: str | None = Field(
        None, min_length=1, description="server mode without url: the server's host"
    )
    port: Integer = Field(6333, ge=1, le=65535, description="server mode with host: REST port")
    grpc_port: Integer = Field(6334, ge=1, le=65535, description="server mode: gRPC port")
    prefer_grpc: bool = Field(False, description="server mode: talk gRPC instead of REST")
    https: bool | None = Field(None, description="server mode with host: use TLS")
    prefix: str | None = Field(None, description="server mode: a path prefix of the REST API")
    api_key: Annotated[SecretStr | None, StackOutput("qdrant_api_key")] = Field(
        None, min_length=1, description="server mode: API key; never logged"
    )
    read_only: bool = Field(
        False,
        description="server mode: the caller only reads: connect() creates nothing, and "
        "read_only_api_key (when set) is sent instead of api_key",
    )
    read_only_api_key: Annotated[SecretStr | None, StackOutput("qdrant_read_only_api_key")] = Field(
        None,
        min_length=1,
        description="server mode: the server's read-only API key, used when read_only",
    )
    check_compatibility: bool = Field(
        False,
        description="let the client probe the server version itself (blocking; connect() "
        "checks the server anyway)",
    )
    create_payload_indexes: bool = Field(
        True,
        description="server mode: index session_id (keyword) and created_at (datetime); "
        "embedded mode always has them",
    )
    path: Annotated[str | None, StackOutput("qdrant_path")] = Field(
        ".mas/qdrant",
        min_length=1,
        description="embedded mode (Qdrant Edge): a directory of collections, "
        "`<path>/<collection_name>/` each, locked while connected",
    )
    location: Literal[":memory:"] | None = Field(
        None,
        description="embedded mode: `:memory:` for a throwaway engine in a private temporary "
        "directory, removed on disconnect",
    )
    collection_name: str = Field("episodic_memory", min_length=1, description="the collection")
    vector_size: Integer = Field(384, ge=1, le=65536, description="dimensions of every vector")
    distance: Literal["Cosine", "Euclid", "Dot", "Manhattan"] = Field(
        "Cosine", description="vector distance (any case)"
    )
    timeout: Seconds = Field(10.0, description="server mode: seconds per request (whole seconds)")
    max_connections: Integer | None = Field(
        None,
        ge=1,
        description="server mode (REST): the most connections open at once, kept alive; callers "
        "beyond it wait for one (within `timeout`). Unset: qdrant-client's own pool, unbounded "
        "and without keep-alive towards localhost, 100 connections elsewhere",
    )
    auto_optimize: bool = Field(
        True,
        description="embedded mode: build the HNSW index in connect() and at the end of "
        "store_many once a segment's worth of points (about 6,600 at 384 dimensions) is "
        "unindexed; see optimize()",
    )
    batch_size: Integer = Field(
        DEFAULT_BATCH_SIZE, ge=1, le=1024, description="points per upsert in store_many"
    )

    write_ordering: Literal["weak", "medium", "strong"] | None = Field(
        None,
        description="server mode, distributed Qdrant: `ordering` of every write (upsert, "
        "delete): `weak` (any replica; the server's default), `medium` (through the shard's "
        "leader while it lives), `strong` (through the leader only: refused while none is "
        "elected); unset: the server's default",
    )
    read_consistency: Literal["majority", "quorum", "all"] | Annotated[int, Field(ge=1)] | None = (
        Field(
            None,
            description="server mode, distributed Qdrant: `consistency` of every read (retrieve, "
            "search): how many replicas answer, a number or `majority`, `quorum`, `all`; unset: "
            "the server's default (1: any replica). Qdrant's count has no such option",
        )
    )

    @field_validator("distance", mode="before")
    @classmethod
    def _distance_case(cls, value: Any) -> Any:
        if isinstance(value, str):
            for name in _DISTANCES:
                if name.lower() == value.lower():
                    return name
        return value

    @model_validator(mode="after")
    def _replication_options_need_a_server(self) -> Self:
        if self.mode == "embedded" and (self.write_ordering or self.read_consistency):
            raise ValueError(
                "write_ordering and read_consistency are server mode only (a distributed Qdrant "
                "server's replicas); the embedded engine keeps one copy: give url, or unset them"
            )
        return self

    @model_validator(mode="after")
    def _grpc_verifies(self) -> Self:
        if self.tls_insecure and self.prefer_grpc:
            raise ValueError(
                "tls_insecure cannot be used with prefer_grpc: gRPC always verifies the server "
                "certificate (give tls_ca instead)"
            )
        return self

    def uses_tls(self) -> bool | None:
        if self.mode == "embedded":
            return None
        if self.url:
            return self.url.startswith("https://")
        return bool(self.https)

    @property
    def mode(self) -> Literal["server", "embedded"]:
        """``server`` when a server address is set, else ``embedded``."""
        if self.url or self.host or not (self.path or self.location):
            return "server"
        return "embedded"
