"""Adapter settings with pydantic-settings.

Sources, highest first:

1. explicit arguments (``PostgresSettings(url=...)``);
2. environment variables, then a ``.env`` file (``POSTGRES_URL``, ``REDIS_URL``, ``QDRANT_URL``,
   ``NEO4J_URL``, ``NEO4J_USER``, ``NEO4J_PASSWORD``, ``TYPESENSE_URL``, ``TYPESENSE_API_KEY``, and
   the same prefix for every other field);
3. the stack-outputs JSON file: what ``pulumi stack output --json --show-secrets`` prints on the
   lab, and what ``mas-devstack up`` writes locally. Its path is ``$MAS_STACK_OUTPUTS``, by
   default ``.mas/stack-outputs.json`` in the working directory;
4. loopback defaults matching the local stack's ports.

Credentials are ``SecretStr`` (URLs that embed a password included), so ``repr`` never shows them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ._exceptions import StorageDataError

__all__ = [
    "DEFAULT_STACK_OUTPUTS",
    "STACK_OUTPUT_KEYS",
    "Neo4jSettings",
    "PostgresSettings",
    "QdrantSettings",
    "RedisSettings",
    "StorageSettings",
    "TypesenseSettings",
    "load_stack_outputs",
    "stack_outputs_path",
]

DEFAULT_STACK_OUTPUTS = ".mas/stack-outputs.json"
STACK_OUTPUTS_ENV = "MAS_STACK_OUTPUTS"
#: The keys a stack-outputs file may hold: Pulumi's exports and the local stack's file alike.
STACK_OUTPUT_KEYS = (
    "postgres_url",
    "redis_url",
    "qdrant_url",
    "qdrant_api_key",
    "qdrant_path",
    "neo4j_url",
    "neo4j_user",
    "neo4j_password",
    "typesense_url",
    "typesense_api_key",
)


def stack_outputs_path() -> tuple[Path, bool]:
    """The outputs file to read, and whether the user named it explicitly."""
    named = os.environ.get(STACK_OUTPUTS_ENV)
    return (Path(named), True) if named else (Path(DEFAULT_STACK_OUTPUTS), False)


def load_stack_outputs(path: Path | None = None, *, required: bool | None = None) -> dict[str, Any]:
    """Read and check a stack-outputs file; ``{}`` when an unnamed default file is absent.

    Raises :class:`StorageDataError` naming the file (and the key) when it is missing but was
    asked for, is not JSON, is not an object, or holds a value that is not a string.
    """
    if path is None:
        path, named = stack_outputs_path()
    else:
        named = True
    if required is not None:
        named = required
    if not path.is_file():
        if named:
            raise StorageDataError(
                f"Stack outputs file {path} does not exist (set {STACK_OUTPUTS_ENV} to an "
                "existing file, or run 'mas-devstack up' to write the local one)"
            )
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, json.JSONDecodeError) as exc:
        raise StorageDataError(f"Stack outputs file {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise StorageDataError(
            f"Stack outputs file {path} must hold a JSON object, not {type(raw).__name__}"
        )
    for key, value in raw.items():
        if key not in STACK_OUTPUT_KEYS or value is None:
            continue
        if not isinstance(value, str):
            raise StorageDataError(
                f"Stack outputs file {path}: key '{key}' must be a string, "
                f"got {type(value).__name__}"
            )
        if value == "[secret]":
            raise StorageDataError(
                f"Stack outputs file {path}: key '{key}' is masked as '[secret]'; write the file "
                "with 'pulumi stack output --json --show-secrets'"
            )
    return {k: v for k, v in raw.items() if k in STACK_OUTPUT_KEYS and v is not None}


class _StackOutputsSource(PydanticBaseSettingsSource):
    """Settings source reading the stack-outputs file through the model's key map."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ maps the whole file at once

    def __call__(self) -> dict[str, Any]:
        keys: dict[str, str] = getattr(self.settings_cls, "outputs_keys", {})
        if not keys:
            return {}
        outputs = load_stack_outputs()
        return {field: outputs[key] for field, key in keys.items() if key in outputs}


class _BackendSettings(BaseSettings):
    """Shared source order and error handling of the five backend settings models."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_default=True
    )
    #: Field name -> stack-outputs key.
    outputs_keys: ClassVar[dict[str, str]] = {}

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            # pydantic's own message echoes the input, which may be a password: list fields only.
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '?'}: {err['msg']}"
                for err in exc.errors()
            )
            raise StorageDataError(f"Invalid {type(self).__name__}: {problems}") from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, dotenv_settings, _StackOutputsSource(settings_cls))

    def to_config(self) -> dict[str, Any]:
        """The adapter config dict, secrets revealed and unset values left out."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value is not None:
                out[name] = value
        return out


class PostgresSettings(_BackendSettings):
    """PostgreSQL (L1 active context, L2 working memory)."""

    model_config = SettingsConfigDict(env_prefix="POSTGRES_")
    outputs_keys: ClassVar[dict[str, str]] = {"url": "postgres_url"}

    url: SecretStr = SecretStr("postgresql://mas@127.0.0.1:55432/mas_memory")
    pool_size: int = Field(10, ge=1)
    min_size: int = Field(2, ge=0)
    timeout: float = Field(5.0, gt=0)
    table: Literal["active_context", "working_memory"] = "active_context"


class RedisSettings(_BackendSettings):
    """Redis (L1 turn cache)."""

    model_config = SettingsConfigDict(env_prefix="REDIS_")
    outputs_keys: ClassVar[dict[str, str]] = {"url": "redis_url"}

    url: SecretStr = SecretStr("redis://127.0.0.1:56379/0")
    socket_timeout: float = Field(5.0, gt=0)
    window_size: int = Field(10, ge=0)
    ttl_seconds: int = Field(86400, ge=1)
    refresh_ttl_on_read: bool = False


class QdrantSettings(_BackendSettings):
    """Qdrant (L3 episodic vectors): server mode with ``url``, embedded mode with ``path``."""

    model_config = SettingsConfigDict(env_prefix="QDRANT_")
    outputs_keys: ClassVar[dict[str, str]] = {
        "url": "qdrant_url",
        "api_key": "qdrant_api_key",
        "path": "qdrant_path",
    }

    url: str | None = None
    api_key: SecretStr | None = None
    path: str | None = ".mas/qdrant"
    collection_name: str = "episodic_memory"
    vector_size: int = Field(384, ge=1)
    distance: str = "Cosine"
    timeout: float = Field(10.0, gt=0)


class Neo4jSettings(_BackendSettings):
    """Neo4j (L3 entity graph)."""

    model_config = SettingsConfigDict(env_prefix="NEO4J_")
    outputs_keys: ClassVar[dict[str, str]] = {
        "url": "neo4j_url",
        "user": "neo4j_user",
        "password": "neo4j_password",
    }

    url: str = "bolt://127.0.0.1:57687"
    user: str = "neo4j"
    password: SecretStr | None = None
    database: str = "neo4j"
    timeout: float = Field(10.0, gt=0)


class TypesenseSettings(_BackendSettings):
    """Typesense (L4 full-text facts)."""

    model_config = SettingsConfigDict(env_prefix="TYPESENSE_")
    outputs_keys: ClassVar[dict[str, str]] = {
        "url": "typesense_url",
        "api_key": "typesense_api_key",
    }

    url: str = "http://127.0.0.1:58108"
    api_key: SecretStr | None = None
    collection_name: str = "semantic_memory"
    timeout: float = Field(10.0, gt=0)


class StorageSettings(BaseModel):
    """The five backends' settings together, each loaded from the same sources."""

    postgres: PostgresSettings = Field(default_factory=lambda: PostgresSettings())
    redis: RedisSettings = Field(default_factory=lambda: RedisSettings())
    qdrant: QdrantSettings = Field(default_factory=lambda: QdrantSettings())
    neo4j: Neo4jSettings = Field(default_factory=lambda: Neo4jSettings())
    typesense: TypesenseSettings = Field(default_factory=lambda: TypesenseSettings())

    def for_kind(self, kind: str) -> _BackendSettings:
        """The settings of one backend by its registry name."""
        if kind not in type(self).model_fields:
            raise StorageDataError(
                f"No settings for backend '{kind}'; known: {', '.join(type(self).model_fields)}"
            )
        value: _BackendSettings = getattr(self, kind)
        return value
