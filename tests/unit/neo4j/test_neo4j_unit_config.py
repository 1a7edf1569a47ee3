"""Neo4jSettings: the spec's keys, ``url``, sources, URL credentials, bad values."""

from __future__ import annotations

from typing import Any

import pytest

from mas_storage import StorageDataError, create_adapter
from mas_storage_neo4j import Neo4jAdapter, Neo4jSettings

parse_config = Neo4jSettings.from_config

SECRET = "s3cret-pa55word"


def test_spec_keys() -> None:
    adapter = Neo4jAdapter(
        {"uri": "bolt://127.0.0.1:7687", "user": "alice", "password": SECRET, "database": "g"}
    )
    assert (adapter.uri, adapter.user, adapter.database) == ("bolt://127.0.0.1:7687", "alice", "g")
    assert adapter.entity_label == "Entity"
    assert adapter.batch_size == 500


def test_url_key_and_defaults() -> None:
    adapter = Neo4jAdapter({"url": "neo4j://127.0.0.1:57687", "password": SECRET})
    assert adapter.uri == "neo4j://127.0.0.1:57687"
    assert adapter.user == "neo4j"
    assert adapter.database == "neo4j"


def test_settings_object(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("MAS_STACK_OUTPUTS", "NEO4J_URL", "NEO4J_PASSWORD", "NEO4J_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env, no default outputs file
    monkeypatch.setenv("NEO4J_MAX_CONNECTION_POOL_SIZE", "7")
    settings = Neo4jSettings(url="bolt://127.0.0.1:57687", password=SECRET, timeout=3.5)
    adapter = Neo4jAdapter(settings)
    assert adapter.uri == "bolt://127.0.0.1:57687"
    assert adapter.timeout == 3.5
    assert adapter.config.max_connection_pool_size == 7  # every key has its variable
    assert adapter.config.connection_acquisition_timeout == 3.5  # defaults to timeout
    assert SECRET not in repr(adapter)


def test_registry_creates_the_adapter() -> None:
    adapter = create_adapter("neo4j", {"uri": "bolt://127.0.0.1:7687", "password": SECRET})
    assert isinstance(adapter, Neo4jAdapter)


def test_credentials_in_url_are_used_and_stripped() -> None:
    cfg = parse_config({"url": f"bolt://bob:{SECRET}@127.0.0.1:7687"})
    assert cfg.url == "bolt://127.0.0.1:7687"
    assert cfg.user == "bob"
    assert cfg.password is not None and cfg.password.get_secret_value() == SECRET
    assert SECRET not in repr(cfg)


def test_ipv6_host_keeps_brackets_when_userinfo_is_stripped() -> None:
    cfg = parse_config({"url": f"bolt://bob:{SECRET}@[::1]:7687"})
    assert cfg.url == "bolt://[::1]:7687"


def test_explicit_password_wins_over_url_password() -> None:
    cfg = parse_config({"url": "bolt://bob:inurl@127.0.0.1:7687", "password": SECRET})
    assert cfg.password is not None and cfg.password.get_secret_value() == SECRET


def test_secret_str_password_is_accepted() -> None:
    from pydantic import SecretStr

    cfg = parse_config({"uri": "bolt://127.0.0.1:7687", "password": SecretStr(SECRET)})
    assert cfg.password is not None and cfg.password.get_secret_value() == SECRET


def test_spec_uri_and_url_together_are_refused() -> None:
    with pytest.raises(StorageDataError, match="give 'url' or its alias 'uri', not both"):
        parse_config({"uri": "bolt://h:1", "url": "bolt://h:2", "password": SECRET})


@pytest.fixture
def no_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("MAS_STACK_OUTPUTS", "NEO4J_URL", "NEO4J_PASSWORD", "NEO4J_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env, no default outputs file


@pytest.mark.usefixtures("no_sources")
@pytest.mark.parametrize("config", [{"uri": "bolt://127.0.0.1:7687"}, None])
def test_missing_password_is_a_data_error(config: Any) -> None:
    with pytest.raises(StorageDataError, match=r"needs a password.*NEO4J_PASSWORD"):
        Neo4jAdapter(config)


def test_empty_password_is_refused() -> None:
    with pytest.raises(StorageDataError, match="password: Value should have at least 1"):
        parse_config({"uri": "bolt://127.0.0.1:7687", "password": ""})


@pytest.mark.usefixtures("no_sources")
def test_injected_driver_needs_no_credentials(fake_driver: Any) -> None:
    adapter = Neo4jAdapter(None, driver=fake_driver)
    assert adapter.uri == "bolt://127.0.0.1:57687"  # the default, unused with a driver


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"uri": "http://127.0.0.1:7474"}, "bolt://"),
        ({"uri": "bolt+routing://127.0.0.1"}, "bolt://"),
        ({"uri": "bolt://"}, "host"),
        ({"uri": "bolt://[::1"}, "valid URL"),
        ({"uri": 7687}, "url: Input should be a valid string"),
        ({"uri": "bolt://h", "user": 5}, "user"),
        ({"uri": "bolt://h", "password": 5}, "password"),
        ({"uri": "bolt://h", "database": 3}, "database"),
        ({"uri": "bolt://h", "timeout": 0}, "timeout"),
        ({"uri": "bolt://h", "timeout": "soon"}, "timeout"),
        ({"uri": "bolt://h", "batch_size": True}, "batch_size"),
        ({"uri": "bolt://h", "connection_timeout": -1}, "connection_timeout"),
        ({"uri": "bolt://h", "max_retry_time": None}, "max_retry_time"),
        ({"uri": "bolt://h", "entity_label": "Bad Label"}, "entity_label"),
        ({"uri": "bolt://h", "entity_label": "A`) DETACH DELETE (n"}, "entity_label"),
        ({"uri": "bolt://h", "notifications_min_severity": "LOUD"}, "notifications"),
        ({"uri": "bolt://h", "max_connection_pool_size": 0}, "max_connection_pool_size"),
        ({"uri": "bolt://h", "entity_lable": "X"}, "did you mean 'entity_label'"),
    ],
)
def test_bad_config_values(config: dict[str, Any], match: str) -> None:
    with pytest.raises(StorageDataError, match=match) as info:
        Neo4jAdapter({"password": SECRET, **config})
    assert SECRET not in str(info.value)


def test_driver_options_are_bounded_for_fast_failure() -> None:
    cfg = parse_config(
        {
            "uri": "bolt://h",
            "password": SECRET,
            "timeout": 4,
            "connection_timeout": 1.5,
            "max_retry_time": 0.5,
            "notifications_min_severity": "warning",
        }
    )
    options = cfg.driver_options()
    assert options["connection_timeout"] == 1.5
    assert options["connection_acquisition_timeout"] == 4.0
    assert options["max_transaction_retry_time"] == 0.5
    assert options["notifications_min_severity"] == "WARNING"
    defaults = parse_config({"uri": "bolt://h", "password": SECRET}).driver_options()
    assert defaults["max_transaction_retry_time"] <= 5
    assert defaults["connection_timeout"] <= 10
    assert defaults["notifications_min_severity"] == "OFF"


@pytest.mark.parametrize(("timeout", "asked", "given"), [(2, 2, 1.8), (2, 5, 1.8), (10, 5, 5)])
def test_the_connect_timeout_stays_below_the_call_deadline(
    timeout: float, asked: float, given: float
) -> None:
    # A connect ended by the deadline's cancellation leaks its socket in the driver; one ended
    # by the driver's own connection timeout does not.
    cfg = parse_config(
        {"uri": "bolt://h", "password": SECRET, "timeout": timeout, "connection_timeout": asked}
    )
    assert cfg.driver_options()["connection_timeout"] == pytest.approx(given)


async def test_connect_builds_the_driver_with_the_config(
    monkeypatch: pytest.MonkeyPatch, driver_class: Any
) -> None:
    created: list[tuple[str, Any, dict[str, Any]]] = []
    fake = driver_class()

    def factory(uri: str, *, auth: Any, **options: Any) -> Any:
        created.append((uri, auth, options))
        return fake

    monkeypatch.setattr("mas_storage_neo4j._adapter.AsyncGraphDatabase.driver", factory)
    adapter = Neo4jAdapter({"url": f"bolt://bob:{SECRET}@127.0.0.1:7687", "timeout": 2})
    await adapter.connect()
    assert created == [
        ("bolt://127.0.0.1:7687", ("bob", SECRET), adapter.config.driver_options()),
    ]
    await adapter.disconnect()
    assert fake.closed == 1
    await adapter.disconnect()  # idempotent
    assert fake.closed == 1


@pytest.mark.usefixtures("no_sources")
async def test_connect_without_credentials_or_driver_is_a_data_error(fake_driver: Any) -> None:
    adapter = Neo4jAdapter(None, driver=fake_driver)
    adapter._driver = None  # the injected driver gone and nothing to build one from
    with pytest.raises(StorageDataError, match="password"):
        await adapter.connect()
