"""PostgresAdapter configuration: every key checked at construction, nothing connected."""

from __future__ import annotations

import pytest
from pg_fakes import URL

from mas_storage import PostgresSettings, StorageDataError, create_adapter, get_adapter_class
from mas_storage_postgres import PostgresAdapter, yoyo_database_url


def test_registered_under_kind_postgres() -> None:
    assert get_adapter_class("postgres") is PostgresAdapter
    assert PostgresAdapter.kind == "postgres"


def test_plain_url_string_is_the_url() -> None:
    adapter = PostgresAdapter(URL)
    assert adapter.config == {"url": URL}
    assert adapter.table == "active_context"
    assert adapter.pool is None
    assert not adapter.is_connected


def test_defaults_follow_the_spec() -> None:
    cfg = PostgresAdapter({"url": URL})._cfg
    assert (cfg.pool_size, cfg.min_size, cfg.timeout, cfg.table) == (10, 2, 5.0, "active_context")
    assert cfg.statement_timeout is None


def test_settings_object_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_URL", URL)
    monkeypatch.setenv("POSTGRES_TABLE", "working_memory")
    monkeypatch.setenv("POSTGRES_POOL_SIZE", "4")
    adapter = PostgresAdapter(PostgresSettings())
    assert adapter.table == "working_memory"
    assert adapter._cfg.pool_size == 4
    assert adapter._cfg.url == URL


def test_create_adapter_reads_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_URL", URL)
    adapter = create_adapter("postgres")
    assert isinstance(adapter, PostgresAdapter)
    assert adapter._cfg.url == URL


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({}, "needs 'url'"),
        ({"url": ""}, "needs 'url'"),
        ({"url": 42}, "needs 'url'"),
        ({"url": "redis://127.0.0.1:6379/0"}, "postgresql://"),
        ({"url": URL, "table": "users; DROP TABLE x"}, "active_context, working_memory"),
        ({"url": URL, "table": "pg_authid"}, "must be one of"),
        ({"url": URL, "pool_size": 0}, "'pool_size'"),
        ({"url": URL, "pool_size": True}, "'pool_size'"),
        ({"url": URL, "min_size": -1}, "'min_size'"),
        ({"url": URL, "min_size": 5, "pool_size": 2}, "must not exceed"),
        ({"url": URL, "timeout": 0}, "'timeout'"),
        ({"url": URL, "timeout": "5"}, "'timeout'"),
        ({"url": URL, "statement_timeout": -1}, "'statement_timeout'"),
        ({"url": URL, "pool_sise": 3}, "Unknown PostgresAdapter config keys: pool_sise"),
    ],
)
def test_bad_config_is_refused_at_construction(config: dict, fragment: str) -> None:
    with pytest.raises(StorageDataError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        PostgresAdapter(config)


def test_libpq_keyword_string_is_accepted() -> None:
    adapter = PostgresAdapter({"url": "host=127.0.0.1 port=55432 dbname=mas_memory user=mas"})
    assert adapter._cfg.url.startswith("host=")


def test_repr_and_errors_never_show_the_password() -> None:
    adapter = PostgresAdapter({"url": URL})
    assert "s3cret-pw" not in repr(adapter)
    with pytest.raises(StorageDataError) as info:
        PostgresAdapter({"url": URL, "table": "nope"})
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
