"""PostgresAdapter configuration: every key checked at construction, nothing connected."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pg_fakes import URL

from mas_storage import StorageDataError, create_adapter, get_adapter_class
from mas_storage_postgres import PostgresAdapter, PostgresSettings, yoyo_database_url


@pytest.fixture
def no_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No POSTGRES_* variable, no .env, no outputs file: only what a test sets."""
    for name in ("MAS_STACK_OUTPUTS", "POSTGRES_URL", "POSTGRES_TABLE", "POSTGRES_POOL_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_registered_under_kind_postgres() -> None:
    assert get_adapter_class("postgres") is PostgresAdapter
    assert PostgresAdapter.kind == "postgres"


def test_plain_url_string_is_the_url() -> None:
    adapter = PostgresAdapter(URL)
    assert adapter.config.url.get_secret_value() == URL
    assert adapter.config.model_fields_set == {"url"}
    assert adapter.table == "active_context"
    assert adapter.pool is None
    assert not adapter.is_connected


def test_defaults_follow_the_spec() -> None:
    cfg = PostgresAdapter({"url": URL}).config
    assert (cfg.pool_size, cfg.min_size, cfg.timeout, cfg.table) == (10, 2, 5.0, "active_context")
    assert (cfg.statement_timeout, cfg.query_timeout) == (None, 30.0)
    # Without a url: the local stack's loopback address (as create_adapter() has always had).
    assert PostgresAdapter({}).config.url.get_secret_value().startswith("postgresql://mas@127.")


@pytest.mark.usefixtures("no_sources")
def test_settings_object_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_URL", URL)
    monkeypatch.setenv("POSTGRES_TABLE", "working_memory")
    monkeypatch.setenv("POSTGRES_POOL_SIZE", "4")
    settings = PostgresSettings()
    adapter = PostgresAdapter(settings)
    assert adapter.config is settings
    assert adapter.table == "working_memory"
    assert adapter.config.pool_size == 4
    assert adapter.config.url.get_secret_value() == URL


@pytest.mark.usefixtures("no_sources")
def test_create_adapter_reads_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_URL", URL)
    adapter = create_adapter("postgres")
    assert isinstance(adapter, PostgresAdapter)
    assert adapter.config.url.get_secret_value() == URL
    override = create_adapter("postgres", table="working_memory", pool_size=3)
    assert isinstance(override, PostgresAdapter)
    assert (override.table, override.config.pool_size) == ("working_memory", 3)
    assert override.config.url.get_secret_value() == URL  # the rest still from the sources
    with pytest.raises(StorageDataError, match="not both"):
        create_adapter("postgres", {"url": URL}, table="working_memory")


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"url": ""}, "url: must not be empty"),
        ({"url": 42}, "url: Input should be a valid string"),
        ({"url": "redis://127.0.0.1:6379/0"}, "url: must be a postgresql:// URL"),
        ({"url": URL, "table": "users; DROP TABLE x"}, "'active_context' or 'working_memory'"),
        ({"url": URL, "table": "pg_authid"}, "table: Input should be"),
        ({"url": URL, "pool_size": 0}, "pool_size: Input should be greater than or equal to 1"),
        ({"url": URL, "pool_size": True}, "pool_size: a bool is not accepted"),
        ({"url": URL, "min_size": -1}, "min_size: Input should be greater than or equal to 0"),
        ({"url": URL, "min_size": 5, "pool_size": 2}, "min_size (5) must not exceed pool_size"),
        ({"url": URL, "timeout": 0}, "timeout: Input should be greater than 0"),
        ({"url": URL, "timeout": "5"}, "timeout: Input should be a valid number"),
        ({"url": URL, "timeout": float("inf")}, "timeout: Input should be a finite number"),
        ({"url": URL, "statement_timeout": -1}, "statement_timeout: Input should be greater"),
        ({"url": URL, "pool_sise": 3}, "unknown key 'pool_sise' (did you mean 'pool_size'?)"),
    ],
)
def test_bad_config_is_refused_at_construction(config: dict, fragment: str) -> None:
    with pytest.raises(StorageDataError, match=re.escape(fragment)):
        PostgresAdapter(config)


def test_libpq_keyword_string_is_accepted() -> None:
    adapter = PostgresAdapter(
        {"url": "host=127.0.0.1 port=55432 dbname=mas_memory user=mas password='kw pw-42'"}
    )
    assert adapter.config.url.get_secret_value().startswith("host=")
    assert adapter._secret_values == ("kw pw-42",)  # redacted from every message
    assert "kw pw-42" not in adapter._where


def test_repr_and_errors_never_show_the_password() -> None:
    adapter = PostgresAdapter({"url": URL})
    assert "s3cret-pw" not in repr(adapter)
    assert "s3cret-pw" not in repr(adapter.config)
    with pytest.raises(StorageDataError) as info:
        PostgresAdapter({"url": URL, "table": "nope"})
    assert "s3cret-pw" not in str(info.value)
    with pytest.raises(StorageDataError) as info:
        PostgresAdapter({"url": URL.replace("postgresql", "mysql")})
    assert "s3cret-pw" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h:5/db", "postgresql+psycopg://u:p@h:5/db"),
        ("postgres://u@h/db?sslmode=require", "postgresql+psycopg://u@h/db?sslmode=require"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_yoyo_database_url_switches_only_the_scheme(url: str, expected: str) -> None:
    assert yoyo_database_url(url) == expected


def test_yoyo_database_url_refuses_other_schemes() -> None:
    with pytest.raises(StorageDataError, match="Not a PostgreSQL URL"):
        yoyo_database_url("mysql://u@h/db")
