"""TypesenseAdapter search parameters and results, and store_many's import handling."""

from __future__ import annotations

import json

import httpx
import pytest

from mas_storage import StorageDataError, StorageNotFoundError, StorageQueryError
from mas_storage_typesense import TypesenseImportError


def _last_search(fake) -> httpx.QueryParams:
    return next(r for r in reversed(fake.requests) if r.url.path.endswith("/search")).url.params


# -- search ----------------------------------------------------------------------------------


async def test_search_returns_documents_with_spec_keys(fake, adapter, fact) -> None:
    doc_id = await adapter.store(fact())
    docs = await adapter.search({"q": "dark mode", "query_by": "content", "limit": 5})
    assert [d["id"] for d in docs] == [doc_id]
    params = _last_search(fake)
    assert (params["q"], params["query_by"], params["per_page"]) == ("dark mode", "content", "5")
    assert "filter_by" not in params


async def test_search_defaults(fake, adapter) -> None:
    await adapter.search({"q": "*"})
    params = _last_search(fake)
    assert dict(params) == {"q": "*", "query_by": "content", "per_page": "10"}


async def test_search_passes_typesense_parameters(fake, adapter) -> None:
    await adapter.search(
        {
            "q": "tea",
            "query_by": ["content", "fact_type"],
            "facet_by": "fact_type",
            "sort_by": "created_at:desc",
            "page": 2,
            "per_page": 3,
            "prefix": False,
            "num_typos": 1,
            "include_fields": None,
        }
    )
    params = _last_search(fake)
    assert params["query_by"] == "content,fact_type"
    assert params["facet_by"] == "fact_type"
    assert params["sort_by"] == "created_at:desc"
    assert (params["page"], params["per_page"]) == ("2", "3")
    assert (params["prefix"], params["num_typos"]) == ("false", "1")
    assert "include_fields" not in params


async def test_filters_are_quoted_and_combined_with_filter_by(fake, adapter) -> None:
    await adapter.search(
        {
            "q": "*",
            "filter_by": "confidence:>0.5",
            "filters": {"fact_type": ["a && b", "c || (d), e"], "session_id": "s-1"},
        }
    )
    assert _last_search(fake)["filter_by"] == (
        "(confidence:>0.5) && fact_type:=[`a && b`,`c || (d), e`] && session_id:=`s-1`"
    )


async def test_filtered_hits_are_rechecked_for_exact_values(fake, adapter) -> None:
    # Typesense matches `a && b` by tokens, so it also answers with `A || B` and `(a) b`.
    for doc_id, value in [("1", "a && b"), ("2", "A || B"), ("3", "(a) b"), ("4", "other")]:
        fake.docs["facts"][doc_id] = {"id": doc_id, "fact_type": value, "tags": [value]}
    found = await adapter.search({"q": "*", "filters": {"fact_type": "a && b"}})
    assert [d["id"] for d in found] == ["1"]
    found = await adapter.search({"q": "*", "filters": {"fact_type": ["A || B", "other"]}})
    assert [d["id"] for d in found] == ["2", "4"]
    meta = await adapter.search({"q": "*", "filters": {"fact_type": "(a) b"}}, with_meta=True)
    assert [h["document"]["id"] for h in meta["hits"]] == ["3"]
    assert meta["found"] == 4  # the server's own count


async def test_filter_with_a_backtick_is_refused_before_sending(fake, adapter) -> None:
    sent = len(fake.requests)
    with pytest.raises(StorageDataError, match="backtick"):
        await adapter.search({"q": "*", "filters": {"fact_type": "x` || fact_type:!=`y"}})
    assert len(fake.requests) == sent


async def test_filter_field_must_be_in_the_schema(fake, adapter) -> None:
    with pytest.raises(StorageDataError, match="Unknown filter field 'secret'"):
        await adapter.search({"q": "*", "filters": {"secret": "x"}})


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"query_by": "content"}, "needs 'q'"),
        ({"q": 3}, "needs 'q'"),
        ({"q": "x", "limt": 3}, "Unknown search keys: limt"),
        ({"q": "x", "limit": 0.5}, "'limit'"),
        ({"q": "x", "limit": 251}, "'limit'"),
        ({"q": "x", "limit": True}, "'limit'"),
        ({"q": "x", "page": 0}, "'page'"),
        ({"q": "x", "page": "2"}, "'page'"),
    ],
)
async def test_bad_search_queries(fake, adapter, query, message) -> None:
    sent = len(fake.requests)
    with pytest.raises(StorageDataError, match=message):
        await adapter.search(query)
    assert len(fake.requests) == sent


async def test_search_query_must_be_a_mapping(adapter) -> None:
    with pytest.raises(StorageDataError, match="mapping"):
        await adapter.search("dark mode")


async def test_search_with_meta(fake, adapter) -> None:
    fake.search_results = {
        "found": 7,
        "out_of": 9,
        "page": 2,
        "search_time_ms": 1,
        "facet_counts": [{"field_name": "fact_type", "counts": [{"value": "p", "count": 7}]}],
        "hits": [
            {
                "document": {"id": "a", "content": "dark mode"},
                "text_match": 578730123365187705,
                "highlights": [{"field": "content", "snippet": "<mark>dark</mark> mode"}],
                "text_match_info": {},
            }
        ],
    }
    result = await adapter.search({"q": "darkk", "page": 2}, with_meta=True)
    assert result == {
        "hits": [
            {
                "document": {"id": "a", "content": "dark mode"},
                "text_match": 578730123365187705,
                "highlights": [{"field": "content", "snippet": "<mark>dark</mark> mode"}],
            }
        ],
        "found": 7,
        "out_of": 9,
        "page": 2,
        "facet_counts": fake.search_results["facet_counts"],
        "search_time_ms": 1,
    }
    as_key = await adapter.search({"q": "darkk", "with_meta": True})
    assert as_key["found"] == 7
    assert "with_meta" not in _last_search(fake)


async def test_search_400_is_a_query_error_with_the_server_message(fake, adapter) -> None:
    message = "Could not find a filter field named `nope` in the schema."
    fake.fail("GET", "/search", httpx.Response(400, json={"message": message}))
    with pytest.raises(StorageQueryError, match="Could not find a filter field named `nope`"):
        await adapter.search({"q": "*", "filter_by": "nope:=1"})


async def test_search_404_is_not_found(fake, adapter) -> None:
    del fake.collections["facts"]
    with pytest.raises(StorageNotFoundError):
        await adapter.search({"q": "*"})


# -- store_many ------------------------------------------------------------------------------


async def test_empty_batch_sends_nothing(fake, adapter) -> None:
    sent = len(fake.requests)
    assert await adapter.store_many([]) == []
    assert len(fake.requests) == sent


async def test_store_many_imports_in_chunks_and_returns_ids_in_order(
    fake, make_adapter, fact
) -> None:
    docs = [fact(id=f"d-{i}") if i % 2 else fact() for i in range(5)]
    before = json.dumps(docs, sort_keys=True)
    async with make_adapter(import_batch_size=2) as ts:
        ids = await ts.store_many(docs)
    assert json.dumps(docs, sort_keys=True) == before
    assert len(ids) == 5 and ids[1] == "d-1" and ids[3] == "d-3"
    assert set(fake.docs["facts"]) == set(ids)
    imports = [r for r in fake.requests if r.url.path.endswith("/import")]
    assert [len(r.content.decode().split("\n")) for r in imports] == [2, 2, 1]
    assert all(r.url.params["action"] == "upsert" for r in imports)
    assert all("created_at" in d for d in fake.docs["facts"].values())


async def test_store_many_action_and_generator_input(fake, adapter, fact) -> None:
    ids = await adapter.store_many((fact(id=f"g-{i}") for i in range(3)), action="create")
    assert ids == ["g-0", "g-1", "g-2"]
    assert fake.requests[-1].url.params["action"] == "create"


async def test_store_many_refuses_unknown_action(adapter, fact) -> None:
    with pytest.raises(StorageDataError, match="Import action"):
        await adapter.store_many([fact()], action="replace")


async def test_mixed_batch_names_each_failed_line_and_keeps_the_good(
    fake, make_adapter, fact
) -> None:
    docs = [
        fact(id="ok-0"),
        {"id": "bad-1", "content": "no session"},  # rejected locally
        fact(id="bad-2", reject=True),  # rejected by the server
        fact(id="ok-3"),
        "not a document",  # rejected locally
        fact(id="bad-5", reject=True),
    ]
    async with make_adapter(import_batch_size=2) as ts:
        with pytest.raises(TypesenseImportError) as info:
            await ts.store_many(docs)
    err = info.value
    assert isinstance(err, StorageDataError)
    assert err.operation == "store_many"
    assert [f[0] for f in err.failures] == [1, 2, 4, 5]
    assert err.failures[0] == (
        1,
        "bad-1",
        "Missing required fields: session_id, fact_type, confidence",
    )
    assert err.failures[1] == (2, "bad-2", "Rejected bad-2")
    assert err.stored_ids == ["ok-0", "ok-3"]
    message = str(err)
    assert message.startswith("4 of 6 documents were rejected (2 stored): line 1 (id 'bad-1')")
    for part in ("line 1 (id 'bad-1')", "line 2 (id 'bad-2'): Rejected bad-2", "line 4:", "line 5"):
        assert part in message
    assert set(fake.docs["facts"]) == {"ok-0", "ok-3"}


async def test_import_error_message_is_bounded(fake, adapter) -> None:
    with pytest.raises(TypesenseImportError) as info:
        await adapter.store_many([{"content": i} for i in range(30)])
    assert len(info.value.failures) == 30
    assert "line 19" in str(info.value) and "line 20" not in str(info.value)
    assert "and 10 more" in str(info.value)


async def test_import_result_count_mismatch_is_a_query_error(fake, adapter, fact) -> None:
    fake.fail("POST", "/import", httpx.Response(200, text='{"success": true}'))
    with pytest.raises(StorageQueryError, match="1 result lines for 2 documents"):
        await adapter.store_many([fact(), fact()])


async def test_import_http_error_raises(fake, adapter, fact) -> None:
    fake.fail("POST", "/import", httpx.Response(404, json={"message": "Not Found"}))
    with pytest.raises(StorageNotFoundError):
        await adapter.store_many([fact()])


async def test_import_garbled_answer_is_a_query_error(fake, adapter, fact) -> None:
    fake.fail("POST", "/import", httpx.Response(200, text="<html>"))
    with pytest.raises(StorageQueryError, match="not JSON"):
        await adapter.store_many([fact()])
