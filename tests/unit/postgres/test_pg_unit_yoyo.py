"""The ``postgresql+mas://`` yoyo backend: the database URL comes from the mas settings."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from yoyo.connections import parse_uri

from mas_storage_postgres._yoyo import SettingsPostgresBackend, resolve_database_uri

OUTPUTS_URL = "postgresql://mas:out-pw@127.0.0.1:55432/mas_memory"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No POSTGRES_* variables, no .env, and an outputs file of our own."""
    for name in ("POSTGRES_URL", "MAS_STACK_OUTPUTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"postgres_url": OUTPUTS_URL}))
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(outputs))
    return outputs


def test_scheme_is_registered_for_yoyo() -> None:
    (ep,) = entry_points(group="yoyo.backends", name="postgresql+mas")
    assert ep.load() is SettingsPostgresBackend


def test_bare_scheme_reads_the_stack_outputs(clean_env: Path) -> None:
    uri = resolve_database_uri(parse_uri("postgresql+mas://"))
    assert uri.scheme == "postgresql+psycopg"
    assert (uri.username, uri.password, uri.hostname, uri.port, uri.database) == (
        "mas",
        "out-pw",
        "127.0.0.1",
        55432,
        "mas_memory",
    )


def test_environment_wins_over_the_outputs(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTGRES_URL", "postgres://env@127.0.0.1:61432/envdb?sslmode=disable")
    uri = resolve_database_uri(parse_uri("postgresql+mas://?connect_timeout=3"))
    assert (uri.username, uri.port, uri.database) == ("env", 61432, "envdb")
    assert uri.args == {"sslmode": "disable", "connect_timeout": "3"}


def test_explicit_host_is_used_as_given(clean_env: Path) -> None:
    uri = resolve_database_uri(parse_uri("postgresql+mas://u:p@127.0.0.1:5/db"))
    assert uri.scheme == "postgresql+psycopg"
    assert (uri.username, uri.password, uri.port, uri.database) == ("u", "p", 5, "db")
