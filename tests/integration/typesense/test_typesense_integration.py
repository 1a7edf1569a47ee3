"""TypesenseAdapter against the real Typesense 0.24.1: what the server holds is checked raw."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import uuid
from typing import Any

import httpx
import pytest
import trustme

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageNotFoundError,
    StorageQueryError,
    StorageTimeoutError,
)
from mas_storage_typesense import TypesenseAdapter, TypesenseImportError, default_schema


def fact(content: str = "User prefers dark mode", **extra: Any) -> dict[str, Any]:
    return {
        "content": content,
        "session_id": "test-session",
        "fact_type": "preference",
        "confidence": 0.9,
        **extra,
    }


async def held(raw: httpx.AsyncClient, collection: str, doc_id: str) -> dict[str, Any] | None:
    """The document as the server holds it, or None."""
    response = await raw.get(f"/collections/{collection}/documents/{doc_id}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    doc: dict[str, Any] = response.json()
    return doc


async def num_documents(raw: httpx.AsyncClient, collection: str) -> int:
    response = await raw.get(f"/collections/{collection}")
    response.raise_for_status()
    return int(response.json()["num_documents"])


# -- schema and connection -------------------------------------------------------------------


async def test_connect_creates_the_default_schema(ts, raw, collection) -> None:
    info = (await raw.get(f"/collections/{collection}")).json()
    assert info["default_sorting_field"] == "created_at"
    fields = {f["name"]: f for f in info["fields"]}
    assert fields["session_id"]["facet"] and fields["fact_type"]["facet"]
    assert fields["confidence"]["type"] == "float"
    assert fields["metadata"]["type"] == "object" and fields["metadata"]["optional"]


async def test_existing_schema_missing_a_field_is_named(ts_config, raw, collection) -> None:
    schema = default_schema(collection)
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "fact_type"]
    (await raw.post("/collections", json=schema)).raise_for_status()
    adapter = TypesenseAdapter({**ts_config, "collection_name": collection})
    with pytest.raises(StorageDataError, match="'fact_type'"):
        await adapter.connect()
    assert not adapter.is_connected
    await adapter.disconnect()


async def test_two_adapters_creating_the_collection_at_once(ts_config, raw, collection) -> None:
    adapters = [TypesenseAdapter({**ts_config, "collection_name": collection}) for _ in range(4)]
    await asyncio.gather(*(a.connect() for a in adapters))
    assert all(a.is_connected for a in adapters)
    assert await num_documents(raw, collection) == 0
    await asyncio.gather(*(a.disconnect() for a in adapters))


async def test_wrong_api_key(ts_config, collection) -> None:
    bad_key = f"wrong-{uuid.uuid4().hex}"
    adapter = TypesenseAdapter({**ts_config, "api_key": bad_key, "collection_name": collection})
    with pytest.raises(StorageConnectionError, match="authentication failed") as info:
        await adapter.connect()
    assert bad_key not in str(info.value)
    assert ts_config["api_key"] not in str(info.value)


async def test_connection_refused() -> None:
    adapter = TypesenseAdapter(
        {"url": "http://127.0.0.1:61999", "api_key": "k-123456", "retries": 0}
    )
    with pytest.raises(StorageConnectionError, match="Cannot reach Typesense"):
        await adapter.connect()


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_server_that_never_answers_is_a_timeout_error(scheme: str) -> None:
    """A listener that accepts (and, for https, completes the handshake), reads the request
    and never answers: the call ends as a ``StorageTimeoutError`` within its timeout.

    Not a tiny timeout against the real server: whether a 1 us read timeout fires before a
    loopback answer is read is a race in the event loop (the answer wins when the loop is
    late, as under load), so such a test failed about 2 runs in 10 over TLS.
    """
    ca = trustme.CA()
    context = None
    if scheme == "https":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    config: dict[str, Any] = {
        "url": f"{scheme}://127.0.0.1:{port}",
        "api_key": "never-answered-key-31337",
        "collection_name": "facts",
        "timeout": 0.3,
    }
    if scheme == "https":
        config["tls_ca"] = ca.cert_pem.bytes().decode()
    adapter = TypesenseAdapter(config)
    try:
        began = asyncio.get_running_loop().time()
        with pytest.raises(StorageTimeoutError) as caught:
            await adapter.connect()
        assert asyncio.get_running_loop().time() - began < 0.3 + 1.0
        assert "never-answered-key-31337" not in str(caught.value)
    finally:
        await adapter.disconnect()
        server.close()
        await server.wait_closed()


async def test_api_key_is_never_logged(
    ts_config, collection, caplog: pytest.LogCaptureFixture
) -> None:
    # Every logger on the path at DEBUG (aiohttp, the default transport, logs no request lines;
    # httpx and httpcore do when a caller injects httpx's own transport); their own levels are
    # set too, as another test in the session may have raised them (mas-devstack quiets httpx).
    for name in (None, "httpx", "httpcore", "aiohttp"):
        caplog.set_level(logging.DEBUG, logger=name)
    async with TypesenseAdapter({**ts_config, "collection_name": collection}) as adapter:
        await adapter.store(fact())
        await adapter.search({"q": "dark"})
        with pytest.raises(StorageDataError):
            await adapter.store({"content": 1})
    bad = TypesenseAdapter({**ts_config, "api_key": "bad-key-987654", "collection_name": "x"})
    with pytest.raises(StorageConnectionError):
        await bad.connect()
    names = {r.name for r in caplog.records}
    assert {"mas_storage", "mas_storage_typesense._adapter"} <= names
    assert ts_config["api_key"] not in caplog.text
    assert "bad-key-987654" not in caplog.text


# -- CRUD ------------------------------------------------------------------------------------


async def test_crud_round_trip(ts, raw, collection) -> None:
    data = fact(metadata={"source": "chat", "turn": {"n": 3}})
    doc_id = await ts.store(data)
    assert "id" not in data and "created_at" not in data
    on_server = await held(raw, collection, doc_id)
    assert on_server is not None
    assert on_server["content"] == "User prefers dark mode"
    assert on_server["metadata"] == {"source": "chat", "turn": {"n": 3}}
    assert await ts.retrieve(doc_id) == on_server

    await ts.upsert({**on_server, "content": "User prefers light mode"})
    assert (await held(raw, collection, doc_id))["content"] == "User prefers light mode"
    with pytest.raises(StorageDataError, match="already exists"):
        await ts.store({**on_server, "content": "again"})

    assert await ts.delete(doc_id) is True
    assert await held(raw, collection, doc_id) is None
    assert await ts.delete(doc_id) is False
    assert await ts.retrieve(doc_id) is None


async def test_odd_ids_round_trip(ts, raw, collection) -> None:
    for doc_id in ("a/b", "x?y=1&z", "spaces and ünïcode", "../collections"):
        assert await ts.store(fact(id=doc_id)) == doc_id
        assert (await ts.retrieve(doc_id))["id"] == doc_id
    assert await num_documents(raw, collection) == 4


async def test_count_and_metrics(ts) -> None:
    await ts.store_many([fact(f"fact {i}") for i in range(7)])
    assert await ts.count() == 7
    assert (await ts.get_metrics())["backend_specific"]["document_count"] == 7


# -- search ----------------------------------------------------------------------------------


async def test_typo_tolerant_search(ts) -> None:
    target = await ts.store(fact("User prefers dark mode"))
    await ts.store_many(
        [fact("The meeting moved to Tuesday"), fact("Coffee with oat milk", fact_type="habit")]
    )
    found = await ts.search({"q": "darkk mode", "query_by": "content"})
    assert [d["id"] for d in found] == [target]
    meta = await ts.search({"q": "darkk mode"}, with_meta=True)
    assert meta["found"] == 1
    assert meta["hits"][0]["text_match"] > 0
    assert "<mark>" in meta["hits"][0]["highlights"][0]["snippet"]


async def test_facet_counts_by_fact_type(ts) -> None:
    kinds = ["preference"] * 5 + ["event"] * 3 + ["habit"] * 2
    await ts.store_many([fact(f"fact {i}", fact_type=k) for i, k in enumerate(kinds)])
    meta = await ts.search({"q": "*", "facet_by": "fact_type", "limit": 0}, with_meta=True)
    assert meta["found"] == 10
    (facet,) = meta["facet_counts"]
    assert facet["field_name"] == "fact_type"
    assert {c["value"]: c["count"] for c in facet["counts"]} == {
        "preference": 5,
        "event": 3,
        "habit": 2,
    }


TRICKY = [
    "a && b",
    "c || d",
    "e, f (g)",
    "(h) && (i || j)",
    "k || fact_type:!=l",  # an injection attempt without backticks
]
#: Values that share tokens with TRICKY, or equal them but for case and symbols.
DECOYS = ["a", "b", "a b c", "c", "d", "e f", "g", "h i j k", "A || B", "(a) b", "C && D"]


async def test_filters_with_operators_in_values_match_only_the_exact_value(
    ts, raw, collection
) -> None:
    values = TRICKY + DECOYS
    ids = await ts.store_many([fact(f"fact {v}", fact_type=v) for v in values])
    by_value = dict(zip(values, ids, strict=True))
    for value in TRICKY:
        found = await ts.search({"q": "*", "filters": {"fact_type": value}, "limit": 50})
        assert [d["id"] for d in found] == [by_value[value]], value
    both = await ts.search({"q": "*", "filters": {"fact_type": TRICKY[:2]}, "limit": 50})
    assert {d["id"] for d in both} == {by_value["a && b"], by_value["c || d"]}
    # Why the adapter re-checks hits: the server itself matches by tokens.
    server = await raw.get(
        f"/collections/{collection}/documents/search",
        params={"q": "*", "query_by": "content", "filter_by": "fact_type:=`a && b`"},
    )
    assert {h["document"]["fact_type"] for h in server.json()["hits"]} == {
        "a && b",
        "A || B",
        "(a) b",
    }


async def test_session_filter_never_returns_a_near_namesake(ts) -> None:
    ids = await ts.store_many(
        [fact(session_id=s) for s in ("session-123", "Session_123", "session123", "session 123")]
    )
    for session, doc_id in zip(
        ("session-123", "Session_123", "session123", "session 123"), ids, strict=True
    ):
        found = await ts.search({"q": "dark", "filters": {"session_id": session}})
        assert [d["id"] for d in found] == [doc_id], session


async def test_backtick_filter_value_is_rejected(ts) -> None:
    await ts.store(fact(fact_type="a"))
    with pytest.raises(StorageDataError, match="backtick"):
        await ts.search({"q": "*", "filters": {"fact_type": "a` || fact_type:!=`zzz"}})


async def test_filters_on_numbers_nested_fields_and_filter_by(ts) -> None:
    await ts.store_many(
        [
            fact("one", id="n1", confidence=0.2, metadata={"source": "chat"}),
            fact("two", id="n2", confidence=0.8, metadata={"source": "doc"}),
            fact("three", id="n3", confidence=0.8, session_id="other", metadata={"source": "chat"}),
        ]
    )
    found = await ts.search({"q": "*", "filters": {"metadata.source": "chat"}})
    assert {d["id"] for d in found} == {"n1", "n3"}
    found = await ts.search(
        {"q": "*", "filter_by": "confidence:>0.5", "filters": {"session_id": "test-session"}}
    )
    assert [d["id"] for d in found] == ["n2"]
    with pytest.raises(StorageDataError, match="Unknown filter field 'nope'"):
        await ts.search({"q": "*", "filters": {"nope": "x"}})


async def test_sort_by_created_at(ts) -> None:
    stamps = list(range(1_700_000_000_000, 1_700_000_000_010))
    random.Random(7).shuffle(stamps)
    await ts.store_many([fact(f"fact {s}", id=f"t{s}", created_at=s) for s in stamps])
    asc = await ts.search({"q": "*", "sort_by": "created_at:asc", "limit": 20})
    assert [d["created_at"] for d in asc] == sorted(stamps)
    desc = await ts.search({"q": "*", "sort_by": "created_at:desc", "limit": 20})
    assert [d["created_at"] for d in desc] == sorted(stamps, reverse=True)


async def test_pagination(ts) -> None:
    ids = await ts.store_many([fact(f"fact {i}", created_at=1000 + i) for i in range(25)])
    pages = [
        await ts.search({"q": "*", "sort_by": "created_at:asc", "limit": 10, "page": p})
        for p in (1, 2, 3, 4)
    ]
    assert [len(p) for p in pages] == [10, 10, 5, 0]
    assert [d["id"] for page in pages for d in page] == ids
    meta = await ts.search({"q": "*", "limit": 10, "page": 3}, with_meta=True)
    assert (meta["found"], meta["page"], len(meta["hits"])) == (25, 3, 5)


async def test_bad_queries_carry_the_server_message(ts) -> None:
    with pytest.raises(StorageQueryError, match="Could not parse the filter query"):
        await ts.search({"q": "*", "filter_by": "fact_type"})  # HTTP 400
    with pytest.raises(StorageQueryError, match="Could not find a filter field named `nope`"):
        await ts.search({"q": "*", "filter_by": "nope:=1"})  # HTTP 404 in 0.24
    with pytest.raises(StorageQueryError, match="in the schema for sorting"):
        await ts.search({"q": "*", "sort_by": "content:asc"})


# -- batches and deletes ---------------------------------------------------------------------


@pytest.mark.slow
async def test_store_many_ten_thousand(ts, raw, collection) -> None:
    docs = [
        fact(f"fact number {i} about topic {i % 97}", session_id=f"s-{i % 20}")
        for i in range(10_000)
    ]
    ids = await ts.store_many(docs)
    assert len(ids) == len(set(ids)) == 10_000
    assert await num_documents(raw, collection) == 10_000
    assert (await held(raw, collection, ids[9_999]))["content"].startswith("fact number 9999")


async def test_empty_batch_is_a_no_op(ts, raw, collection) -> None:
    assert await ts.store_many([]) == []
    assert await num_documents(raw, collection) == 0


async def test_mixed_batch_names_failed_lines_and_keeps_good_ones(ts, raw, collection) -> None:
    docs = [
        fact("good zero", id="g0", metadata={"score": 1}),
        {"id": "b1", "content": "missing the session"},  # rejected before sending
        fact("bad two", id="b2", metadata={"score": "high"}),  # rejected by the server
        fact("good three", id="g3"),
        fact("bad four", id="b4", confidence="very"),  # rejected before sending
        fact("good five", id="g5"),
    ]
    with pytest.raises(TypesenseImportError) as info:
        await ts.store_many(docs)
    err = info.value
    assert [index for index, _, _ in err.failures] == [1, 2, 4]
    assert "line 1 (id 'b1'): Missing required fields" in str(err)
    assert "line 2 (id 'b2'): Field `metadata.score` must be an int64" in str(err)
    assert "line 4 (id 'b4')" in str(err)
    assert err.stored_ids == ["g0", "g3", "g5"]
    assert await num_documents(raw, collection) == 3
    for doc_id in ("g0", "g3", "g5"):
        assert await held(raw, collection, doc_id) is not None
    for doc_id in ("b1", "b2", "b4"):
        assert await held(raw, collection, doc_id) is None


async def test_create_action_reports_duplicates(ts, raw, collection) -> None:
    await ts.store(fact(id="dup"))
    with pytest.raises(TypesenseImportError, match="line 1 \\(id 'dup'\\): A document with id"):
        await ts.store_many([fact(id="new"), fact("changed", id="dup")], action="create")
    assert (await held(raw, collection, "dup"))["content"] == "User prefers dark mode"
    assert await held(raw, collection, "new") is not None


async def test_dropped_collection_raises_not_none(ts, raw, collection) -> None:
    assert await ts.drop_collection() is True
    with pytest.raises(StorageNotFoundError):
        await ts.retrieve("x")
    with pytest.raises(StorageNotFoundError):
        await ts.delete("x")
    assert (await raw.get(f"/collections/{collection}")).status_code == 404
