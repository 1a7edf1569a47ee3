"""Settings sources, proved one by one: argument > env > .env > outputs file > default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mas_storage import (
    Neo4jSettings,
    PostgresSettings,
    QdrantSettings,
    RedisSettings,
    StorageDataError,
    StorageSettings,
    TypesenseSettings,
    load_stack_outputs,
)

ENV_VARS = [
    "POSTGRES_URL",
    "REDIS_URL",
    "QDRANT_URL",
    "QDRANT_API_KEY",
    "QDRANT_PATH",
    "NEO4J_URL",
    "NEO4J_USER",
    "NEO4J_PASSWORD",
    "TYPESENSE_URL",
    "TYPESENSE_API_KEY",
    "MAS_STACK_OUTPUTS",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty working directory (no .env, no .mas/) and none of our variables set."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_outputs(path: Path, **values: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))
    return path


def test_loopback_defaults_without_any_source() -> None:
    assert PostgresSettings().to_config()["url"] == "postgresql://mas@127.0.0.1:55432/mas_memory"
    assert RedisSettings().to_config()["url"] == "redis://127.0.0.1:56379/0"
    assert Neo4jSettings().url == "bolt://127.0.0.1:57687"
    assert TypesenseSettings().url == "http://127.0.0.1:58108"
    assert QdrantSettings().path == ".mas/qdrant" and QdrantSettings().url is None


def test_default_outputs_file_is_read(clean_env: Path) -> None:
    write_outputs(clean_env / ".mas/stack-outputs.json", redis_url="redis://:pw@127.0.0.1:1/0")
    assert RedisSettings().to_config()["url"] == "redis://:pw@127.0.0.1:1/0"


def test_precedence_source_by_source(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = write_outputs(
        clean_env / "out.json",
        neo4j_url="bolt://127.0.0.1:3",
        neo4j_user="from-file",
        neo4j_password="file-pw",
    )
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(outputs))
    assert Neo4jSettings().url == "bolt://127.0.0.1:3"  # file over default
    (clean_env / ".env").write_text("NEO4J_URL=bolt://127.0.0.1:2\nNEO4J_USER=from-dotenv\n")
    assert Neo4jSettings().url == "bolt://127.0.0.1:2"  # .env over file
    assert Neo4jSettings().user == "from-dotenv"
    monkeypatch.setenv("NEO4J_URL", "bolt://127.0.0.1:1")
    assert Neo4jSettings().url == "bolt://127.0.0.1:1"  # env over .env
    assert Neo4jSettings(url="bolt://127.0.0.1:0").url == "bolt://127.0.0.1:0"  # arg over env
    # Each field resolves on its own: the password still comes from the file.
    assert Neo4jSettings().to_config()["password"] == "file-pw"


def test_every_outputs_key_reaches_its_settings(clean_env: Path) -> None:
    write_outputs(
        clean_env / ".mas/stack-outputs.json",
        postgres_url="postgresql://mas:pg-pw@127.0.0.1:5/db",
        redis_url="redis://:redis-pw@127.0.0.1:6/0",
        qdrant_url="http://127.0.0.1:7",
        qdrant_api_key="qdrant-key",
        qdrant_path=None,
        neo4j_url="bolt://127.0.0.1:8",
        neo4j_user="neo",
        neo4j_password="neo-pw",
        typesense_url="http://127.0.0.1:9",
        typesense_api_key="ts-key",
    )
    settings = StorageSettings()
    assert settings.postgres.to_config()["url"] == "postgresql://mas:pg-pw@127.0.0.1:5/db"
    assert settings.redis.to_config()["url"] == "redis://:redis-pw@127.0.0.1:6/0"
    assert settings.qdrant.to_config()["api_key"] == "qdrant-key"
    assert settings.qdrant.url == "http://127.0.0.1:7"
    assert settings.neo4j.to_config() == {
        "url": "bolt://127.0.0.1:8",
        "user": "neo",
        "password": "neo-pw",
        "database": "neo4j",
        "timeout": 10.0,
    }
    assert settings.typesense.to_config()["api_key"] == "ts-key"
    assert settings.for_kind("redis") is settings.redis
    with pytest.raises(StorageDataError, match="No settings for backend 'mongo'"):
        settings.for_kind("mongo")


def test_secrets_are_hidden_in_repr(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_URL", "postgresql://mas:pg-secret@127.0.0.1/db")
    monkeypatch.setenv("NEO4J_PASSWORD", "neo-secret")
    monkeypatch.setenv("TYPESENSE_API_KEY", "ts-secret")
    monkeypatch.setenv("QDRANT_API_KEY", "qd-secret")
    text = repr(StorageSettings()) + str(StorageSettings())
    for secret in ("pg-secret", "neo-secret", "ts-secret", "qd-secret"):
        assert secret not in text


def test_named_outputs_file_that_is_missing(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = clean_env / "nope.json"
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(missing))
    with pytest.raises(StorageDataError, match=r"nope\.json does not exist"):
        RedisSettings()


def test_malformed_outputs_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = clean_env / "bad.json"
    bad.write_text("{not json")
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(bad))
    with pytest.raises(StorageDataError, match=r"bad\.json is not valid JSON"):
        RedisSettings()
    bad.write_text("[1, 2]")
    with pytest.raises(StorageDataError, match=r"bad\.json must hold a JSON object"):
        RedisSettings()


def test_outputs_key_of_wrong_type_names_file_and_key(clean_env: Path) -> None:
    path = write_outputs(clean_env / "o.json", redis_url=6379)
    with pytest.raises(StorageDataError, match=r"o\.json: key 'redis_url' must be a string"):
        load_stack_outputs(path)


def test_masked_pulumi_secret_is_explained(clean_env: Path) -> None:
    path = write_outputs(clean_env / "o.json", neo4j_password="[secret]")
    with pytest.raises(StorageDataError, match=r"neo4j_password.*--show-secrets"):
        load_stack_outputs(path)


def test_invalid_value_error_does_not_echo_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_POOL_SIZE", "lots-of-hunter2")
    with pytest.raises(StorageDataError, match="pool_size") as info:
        PostgresSettings()
    assert "hunter2" not in str(info.value)


def test_unknown_keys_in_outputs_are_ignored(clean_env: Path) -> None:
    path = write_outputs(clean_env / "o.json", something_else=[1], redis_url="redis://h/0")
    assert load_stack_outputs(path) == {"redis_url": "redis://h/0"}
