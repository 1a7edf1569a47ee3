"""The adapter registry: entry points, lazy loading, clear errors."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from typing import Any

import pytest

import mas_storage._registry as registry
from mas_storage import (
    AdapterNotFoundError,
    StorageAdapter,
    StorageError,
    available_adapters,
    create_adapter,
    get_adapter_class,
    register_adapter,
)

KINDS = ["postgres", "redis", "qdrant", "neo4j", "typesense"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_resolves_to_its_adapter(kind: str) -> None:
    cls = get_adapter_class(kind)
    assert issubclass(cls, StorageAdapter)
    assert cls.kind == kind
    assert cls.__module__.startswith(f"mas_storage_{kind}")
    assert kind in available_adapters()


@pytest.mark.parametrize("kind", KINDS)
def test_create_adapter_takes_config_from_settings(
    kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    outputs = {
        "postgres_url": "postgresql://mas:pw@127.0.0.1:1/mas_memory",
        "redis_url": "redis://:pw@127.0.0.1:2/0",
        "qdrant_path": str(tmp_path / "qdrant"),
        "neo4j_url": "bolt://127.0.0.1:3",
        "neo4j_user": "neo4j",
        "neo4j_password": "pw-neo4j",
        "typesense_url": "http://127.0.0.1:4",
        "typesense_api_key": "key-typesense",
    }
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(tmp_path / "outputs.json"))
    for name in (
        "POSTGRES_URL",
        "REDIS_URL",
        "QDRANT_URL",
        "QDRANT_PATH",
        "NEO4J_URL",
        "NEO4J_PASSWORD",
        "TYPESENSE_URL",
        "TYPESENSE_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    adapter = create_adapter(kind)
    assert isinstance(adapter, get_adapter_class(kind))
    assert not adapter.is_connected
    # The values came from the outputs file, not from the loopback defaults.
    origin = {
        "postgres": ":1/",
        "redis": ":2/",
        "qdrant": "qdrant",
        "neo4j": ":3",
        "typesense": ":4",
    }[kind]
    value = getattr(adapter.config, "url", None) or getattr(adapter.config, "path", None)
    assert value is not None
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    assert origin in text


def test_unknown_kind_lists_what_is_available() -> None:
    with pytest.raises(AdapterNotFoundError, match="No storage adapter of kind 'mongo'") as info:
        create_adapter("mongo")
    for kind in KINDS:
        assert kind in str(info.value)
    assert isinstance(info.value, StorageError)


def test_uninstalled_first_party_kind_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_classes", {})
    monkeypatch.setattr(registry, "_entry_points", {})
    with pytest.raises(AdapterNotFoundError, match=r"e\.g\. mas-storage-redis"):
        get_adapter_class("redis")


def test_broken_plugin_fails_alone_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = EntryPoint("broken", "no_such_module_xyz:Adapter", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_classes", {})
    monkeypatch.setattr(registry, "_entry_points", {"broken": broken})
    with pytest.raises(AdapterNotFoundError, match=r"'broken' \(no_such_module_xyz:Adapter\)"):
        get_adapter_class("broken")


def test_entry_point_that_is_not_an_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    bogus = EntryPoint("bogus", "collections:OrderedDict", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_classes", {})
    monkeypatch.setattr(registry, "_entry_points", {"bogus": bogus})
    with pytest.raises(AdapterNotFoundError, match="not a StorageAdapter subclass"):
        get_adapter_class("bogus")


def test_register_adapter_refuses_clashes_and_non_adapters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_classes", {})
    redis_cls = get_adapter_class("redis")
    pg_cls = get_adapter_class("postgres")
    with pytest.raises(ValueError, match="already registered"):
        register_adapter("redis", pg_cls)
    register_adapter("redis", pg_cls, replace=True)
    assert get_adapter_class("redis") is pg_cls
    register_adapter("redis", redis_cls, replace=True)
    with pytest.raises(TypeError, match="not a StorageAdapter subclass"):
        register_adapter("x", dict)  # type: ignore[arg-type]
