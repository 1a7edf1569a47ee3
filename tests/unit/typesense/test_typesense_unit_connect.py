"""TypesenseAdapter config, connect (server, key, collection, schema) and disconnect."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageQueryError,
    StorageTimeoutError,
    create_adapter,
)
from mas_storage_typesense import TypesenseAdapter, TypesenseSettings, default_schema
from mas_storage_typesense._transport import AiohttpTransport

URL = "http://127.0.0.1:61999"
KEY = "unit-test-key-8f3a9c"


# -- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"url": URL}, "api_key: Field required"),
        ({"url": "", "api_key": KEY}, "url: must be http"),
        ({"url": URL, "api_key": ""}, "api_key: Value should have at least 1"),
        ({"url": URL, "api_key": KEY, "timeout": 0}, "timeout: Input should be greater than 0"),
        ({"url": URL, "api_key": KEY, "timeout": "10"}, "timeout: Input should be a valid number"),
        ({"url": URL, "api_key": KEY, "retries": -1}, "retries"),
        ({"url": URL, "api_key": KEY, "max_connections": 0}, "max_connections"),
        ({"url": URL, "api_key": KEY, "connect_timeout": float("nan")}, "connect_timeout"),
        ({"url": URL, "api_key": KEY, "colection_name": "x"}, "did you mean 'collection_name'"),
    ],
)
def test_bad_config_is_a_data_error(config: Any, match: str) -> None:
    with pytest.raises(StorageDataError, match=match) as info:
        TypesenseAdapter(config)
    assert KEY not in str(info.value)


def test_url_must_be_http() -> None:
    with pytest.raises(StorageDataError, match="http"):
        TypesenseAdapter({"url": "ftp://127.0.0.1:1", "api_key": KEY})


def test_without_a_key_from_any_source_the_error_names_where_it_can_come_from(
    no_outputs: None,
) -> None:
    with pytest.raises(StorageDataError, match="TYPESENSE_API_KEY or stack output"):
        TypesenseAdapter()


@pytest.fixture
def no_outputs(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read an empty stack-outputs file and no TYPESENSE_* environment."""
    outputs = tmp_path / "outputs.json"
    outputs.write_text("{}")
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(outputs))
    monkeypatch.delenv("TYPESENSE_API_KEY", raising=False)
    monkeypatch.delenv("TYPESENSE_URL", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("no_outputs")
def test_settings_object_is_accepted() -> None:
    settings = TypesenseSettings(url=URL, api_key=KEY, collection_name="facts_x")
    ts = TypesenseAdapter(settings)
    assert ts.url == URL
    assert ts.collection_name == "facts_x"
    assert ts.schema["name"] == "facts_x"
    assert KEY not in repr(ts)


@pytest.mark.usefixtures("no_outputs")
def test_settings_without_key_is_refused() -> None:
    with pytest.raises(StorageDataError, match="api_key: Field required"):
        TypesenseAdapter(TypesenseSettings(url=URL))


@pytest.mark.usefixtures("no_outputs")
def test_every_key_reads_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TYPESENSE_API_KEY", KEY)
    monkeypatch.setenv("TYPESENSE_TIMEOUT", "2.5")
    monkeypatch.setenv("TYPESENSE_IMPORT_BATCH_SIZE", "100")
    cfg = TypesenseSettings()
    assert (cfg.timeout, cfg.connect_timeout, cfg.import_batch_size) == (2.5, 2.5, 100)


def test_secret_str_key_is_accepted_and_masked() -> None:
    ts = TypesenseAdapter({"url": URL, "api_key": SecretStr(KEY)})
    assert ts._new_client().headers["x-typesense-api-key"] == KEY
    assert KEY in ts._secret_values


async def test_operation_after_the_client_vanished_is_a_connection_error(make_adapter) -> None:
    ts = make_adapter()
    await ts.connect()
    await ts._close_client()  # as if disconnect() ran while this operation was queued
    with pytest.raises(StorageConnectionError, match="client is closed"):
        await ts.retrieve("x")
    await ts.disconnect()


def test_registry_builds_the_adapter() -> None:
    ts = create_adapter("typesense", {"url": URL, "api_key": KEY})
    assert isinstance(ts, TypesenseAdapter)
    assert ts.collection_name == "semantic_memory"
    assert [f["name"] for f in ts.schema["fields"]] == [
        "content",
        "session_id",
        "fact_type",
        "confidence",
        "created_at",
        "metadata",
    ]


def test_schema_gives_the_collection_name() -> None:
    schema = {"name": "mine", "fields": [{"name": "content", "type": "string"}]}
    ts = TypesenseAdapter({"url": URL, "api_key": KEY, "schema": schema})
    assert ts.collection_name == "mine"
    assert schema == {"name": "mine", "fields": [{"name": "content", "type": "string"}]}


def test_schema_name_conflict_is_refused() -> None:
    schema = {"name": "other", "fields": []}
    with pytest.raises(StorageDataError, match="other"):
        TypesenseAdapter({"url": URL, "api_key": KEY, "collection_name": "a", "schema": schema})


def test_schema_must_be_a_mapping() -> None:
    with pytest.raises(StorageDataError, match="collection_schema: Input should be a valid dict"):
        TypesenseAdapter({"url": URL, "api_key": KEY, "schema": ["content"]})


def test_import_batch_size_must_be_positive() -> None:
    with pytest.raises(StorageDataError, match="import_batch_size"):
        TypesenseAdapter({"url": URL, "api_key": KEY, "import_batch_size": 0})


def test_default_client_has_retries_limits_and_no_env_proxy() -> None:
    ts = TypesenseAdapter({"url": URL + "/", "api_key": KEY, "timeout": 3, "retries": 4})
    client = ts._new_client()
    assert client.base_url == URL
    assert client.headers["x-typesense-api-key"] == KEY
    assert client.timeout.read == 3
    assert client.timeout.connect == 3
    transport = client._transport
    assert isinstance(transport, AiohttpTransport)
    assert transport.retries == 4
    assert transport.max_connections == 20
    assert transport._session is None  # made on first use, inside the running loop


async def test_default_session_trusts_no_environment_proxy_and_keeps_the_encoding() -> None:
    transport = AiohttpTransport(max_connections=7)
    session = transport._new_session()
    try:
        assert session.trust_env is False  # a database client never goes through a proxy
        assert session.auto_decompress is False  # httpx decodes by Content-Encoding
        assert session.connector is not None and session.connector.limit == 7
    finally:
        await session.close()


# -- connect ---------------------------------------------------------------------------------


async def test_connect_creates_the_collection_with_the_default_schema(fake, make_adapter) -> None:
    ts = make_adapter()
    await ts.connect()
    try:
        assert ts.is_connected
        held = fake.collections["facts"]
        assert held["default_sorting_field"] == "created_at"
        assert held["enable_nested_fields"] is True
        types = {f["name"]: (f["type"], f.get("facet", False)) for f in held["fields"]}
        assert types == {
            "content": ("string", False),
            "session_id": ("string", True),
            "fact_type": ("string", True),
            "confidence": ("float", False),
            "created_at": ("int64", False),
            "metadata": ("object", False),
        }
        assert fake.paths() == ["/health", "/collections/facts", "/collections"]
        assert all(r.headers["x-typesense-api-key"] == KEY for r in fake.requests[1:])
    finally:
        await ts.disconnect()


async def test_connect_twice_is_a_no_op(fake, make_adapter) -> None:
    ts = make_adapter()
    await ts.connect()
    await ts.connect()
    assert fake.paths().count("/health") == 1
    await ts.disconnect()


async def test_connect_uses_an_existing_collection(fake, make_adapter) -> None:
    fake.add_collection(default_schema("facts"))
    ts = make_adapter()
    await ts.connect()
    assert fake.paths("POST") == []
    await ts.disconnect()


async def test_concurrently_created_collection_is_not_an_error(fake, make_adapter) -> None:
    # Another client creates it between our lookup and our create: the create answers 409.
    real = default_schema("facts")

    def racing(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path == "/collections":
            fake.add_collection(real)
            return httpx.Response(409, json={"message": "A collection with name already exists."})
        return None

    fake.overrides.append(racing)
    ts = make_adapter()
    await ts.connect()
    assert ts.is_connected
    assert fake.paths() == ["/health", "/collections/facts", "/collections", "/collections/facts"]
    await ts.disconnect()


async def test_existing_collection_missing_a_field_is_named(fake, make_adapter) -> None:
    schema = default_schema("facts")
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "fact_type"]
    fake.add_collection(schema)
    ts = make_adapter()
    with pytest.raises(StorageDataError, match="'fact_type'") as info:
        await ts.connect()
    assert info.value.operation == "connect"
    assert not ts.is_connected
    assert ts._client is None


async def test_existing_collection_with_a_mistyped_field_is_named(fake, make_adapter) -> None:
    schema = default_schema("facts")
    schema["fields"][4] = {"name": "created_at", "type": "string"}
    fake.add_collection(schema)
    with pytest.raises(StorageDataError, match="'created_at' has type 'string'"):
        await make_adapter().connect()


async def test_optional_and_wildcard_fields_are_not_required(fake, make_adapter) -> None:
    schema = {
        "name": "facts",
        "fields": [
            {"name": "content", "type": "string"},
            {"name": "extra", "type": "string", "optional": True},
            {"name": ".*", "type": "auto"},
        ],
    }
    fake.add_collection({"name": "facts", "fields": [{"name": "content", "type": "string"}]})
    ts = make_adapter(schema=schema)
    await ts.connect()
    assert ts.is_connected
    await ts.disconnect()


async def test_wrong_key_is_an_authentication_failure_without_the_key(make_adapter) -> None:
    ts = make_adapter(api_key="wrong-key-123456")
    with pytest.raises(StorageConnectionError, match="authentication failed") as info:
        await ts.connect()
    assert "wrong-key-123456" not in str(info.value)
    assert not ts.is_connected


async def test_forbidden_is_an_authentication_failure(fake, make_adapter) -> None:
    fake.fail("GET", "/collections/facts", httpx.Response(403, json={"message": "Forbidden"}))
    with pytest.raises(StorageConnectionError, match="authentication failed"):
        await make_adapter().connect()


async def test_unhealthy_server_is_a_connection_error(fake, make_adapter) -> None:
    fake.fail("GET", "/health", httpx.Response(503, json={"ok": False}))
    with pytest.raises(StorageConnectionError, match="not ready"):
        await make_adapter().connect()


async def test_health_not_ok_is_a_connection_error(fake, make_adapter) -> None:
    fake.fail("GET", "/health", httpx.Response(200, json={"ok": False}))
    with pytest.raises(StorageConnectionError, match="not ready"):
        await make_adapter().connect()


async def test_health_that_is_not_json_is_a_query_error(fake, make_adapter) -> None:
    fake.fail("GET", "/health", httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(StorageQueryError, match="not JSON"):
        await make_adapter().connect()


async def test_refused_connection_is_a_connection_error(fake, make_adapter) -> None:
    fake.fail("GET", "/health", httpx.ConnectError("[Errno 111] Connection refused"))
    ts = make_adapter()
    with pytest.raises(StorageConnectionError, match="Cannot reach Typesense") as info:
        await ts.connect()
    assert isinstance(info.value.orig, httpx.ConnectError)
    assert ts._client is None


async def test_timeout_is_a_timeout_error(fake, make_adapter) -> None:
    fake.fail("GET", "/collections/facts", httpx.ReadTimeout("timed out"))
    with pytest.raises(StorageTimeoutError, match="timed out"):
        await make_adapter().connect()


async def test_collection_creation_rejected_is_a_query_error(fake, make_adapter) -> None:
    fake.fail(
        "POST", "/collections", httpx.Response(400, json={"message": "Bad field type `strng`."})
    )
    with pytest.raises(StorageQueryError, match="Bad field type `strng`"):
        await make_adapter().connect()


async def test_disconnect_is_idempotent_and_safe_before_connect(make_adapter) -> None:
    ts = make_adapter()
    await ts.disconnect()
    await ts.connect()
    await ts.disconnect()
    await ts.disconnect()
    assert not ts.is_connected
    with pytest.raises(StorageConnectionError, match="not connected"):
        await ts.retrieve("x")


async def test_async_with_connects_and_closes(make_adapter) -> None:
    async with make_adapter() as ts:
        assert ts.is_connected
        client = ts._client
    assert not ts.is_connected
    assert client is not None and client.is_closed


async def test_auto_connect(fake, make_adapter, fact) -> None:
    ts = make_adapter(auto_connect=True)
    doc_id = await ts.store(fact())
    assert doc_id in fake.docs["facts"]
    await ts.disconnect()


async def test_api_key_never_logged_or_raised(
    fake, make_adapter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with make_adapter() as ts:
        await ts.search({"q": "x"})
    fake.fail("GET", "/search", httpx.ReadTimeout(f"boom {KEY}"))
    async with make_adapter() as ts:
        with pytest.raises(StorageTimeoutError) as info:
            await ts.search({"q": "x"})
    assert KEY not in str(info.value)
    assert caplog.records  # httpx, httpcore and the adapter did log
    assert KEY not in caplog.text
    assert KEY not in json.dumps(await ts.get_metrics(), default=str)
