"""Hostile input against TypesenseAdapter on the real server (issue #11).

500 generated calls per method that takes caller data: random documents, wrong field types,
NaN and infinities, huge strings, lone surrogates, NUL bytes, path traversal in document ids
(``..``, ``../other``, encoded slashes and dots), and filter injection in ``filters`` values
(backticks, ``&&``, ``||``, parentheses). Each call returns or raises a StorageError; a refused
call leaves the server as it was.

The module uses a private collection, plus a sentinel collection no call should ever reach.
The state compared before and after each call is the export (every document) of both, so a
traversal that deleted or wrote anywhere else would show. A ``filters`` search must return only
documents whose fields equal the values asked for, exactly. Accepted writes are checked
against what the server holds, then the collection is reset to its seed documents.

Everything here holds the admin key (admin outputs): the adapter too, so a traversal into the
sentinel collection would show, not be refused by a scoped key's limits (those are tested in
``tests/integration/test_least_privilege.py``).
"""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hostile import (
    INJECTIONS,
    HostileFixture,
    any_value,
    explore,
    hostile_session,
    hostile_text,
    huge_text,
    maybe,
    records,
)
from hypothesis import strategies as st

from mas_storage import StorageError
from mas_storage_typesense import TypesenseAdapter, TypesenseImportError, default_schema

NS = uuid.uuid4().hex[:10]
COLLECTION = f"test_hostile_{NS}"
SENTINEL = f"test_hostile_{NS}_sentinel"
SEED_SESSIONS = ("seed-a", "seed b && c", "seed-\u05e9\U0001f600")
SEEDS = [
    {
        "id": f"seed-{i}",
        "content": text,
        "session_id": SEED_SESSIONS[i % 3],
        "fact_type": "preference" if i % 2 else "fact",
        "confidence": 0.5 + i / 10,
        "created_at": 1_700_000_000_000 + i,
        "metadata": {"topic": "billing" if i % 2 else "travel"},
    }
    for i, text in enumerate(
        ["likes dark mode", "prefers tea || coffee", "lives in `Paris`", "a && b", "caf\u00e9"]
    )
]
SEED_IDS = [doc["id"] for doc in SEEDS]


def _lines(text: str) -> list[str]:
    """The lines of a JSONL answer. Not ``splitlines()``: exports hold raw U+2028, U+0085..."""
    return [line for line in text.split("\n") if line.strip()]


def doc_path(collection: str, doc_id: str) -> str:
    """A document's path, every character but unreserved ones encoded (dots too)."""
    return f"/collections/{collection}/documents/{quote(doc_id, safe='').replace('.', '%2E')}"


@dataclass(repr=False)
class Ts(HostileFixture):
    """The module's adapter and a raw client on the same server."""

    adapter: TypesenseAdapter
    raw: httpx.AsyncClient

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.run(self.raw.request(method, path, **kwargs))

    def docs(self, collection: str = COLLECTION) -> dict[str, dict[str, Any]]:
        response = self.request("GET", f"/collections/{collection}/documents/export")
        response.raise_for_status()
        found = [json.loads(line) for line in _lines(response.text)]
        return {doc["id"]: doc for doc in found}

    def import_docs(self, collection: str, docs: list[dict[str, Any]]) -> None:
        body = "\n".join(json.dumps(doc) for doc in docs)
        response = self.request(
            "POST",
            f"/collections/{collection}/documents/import",
            params={"action": "upsert"},
            content=body.encode(),
        )
        response.raise_for_status()
        assert all(json.loads(line)["success"] for line in _lines(response.text))

    def reset(self) -> None:
        """The collection back to exactly the seed documents (recreated if a document cannot
        be deleted by its id)."""
        try:
            for doc_id in self.docs():
                if doc_id not in SEED_IDS:
                    self.request("DELETE", doc_path(COLLECTION, doc_id)).raise_for_status()
        except (httpx.InvalidURL, httpx.HTTPStatusError):
            self.request("DELETE", f"/collections/{COLLECTION}")
            schema = default_schema(COLLECTION)
            self.request("POST", "/collections", json=schema).raise_for_status()
        self.import_docs(COLLECTION, SEEDS)


@pytest.fixture(autouse=True)
def _fresh(ts: Ts) -> None:
    """Each property starts from the seeds, whatever an earlier one left behind."""
    ts.fresh()


@pytest.fixture(scope="module")
def ts(stack_outputs: dict[str, Any], stack_admin: dict[str, Any]) -> Iterator[Ts]:
    url, key = stack_outputs["typesense_url"], stack_admin["typesense_admin_api_key"]
    with hostile_session(stack_outputs, "typesense") as session:
        loop = session.loop
        adapter = TypesenseAdapter({"url": url, "api_key": key, "collection_name": COLLECTION})
        sentinel = TypesenseAdapter({"url": url, "api_key": key, "collection_name": SENTINEL})
        raw = httpx.AsyncClient(
            base_url=url,
            headers={"X-TYPESENSE-API-KEY": key},
            timeout=30,
            trust_env=False,
            verify=ssl.create_default_context(),
        )
        loop.run(adapter.connect())
        loop.run(sentinel.connect())  # creates the sentinel collection
        loop.run(sentinel.disconnect())

        async def export(collection: str) -> str:
            response = await raw.get(f"/collections/{collection}/documents/export")
            response.raise_for_status()
            return "\n".join(sorted(_lines(response.text)))

        async def snapshot() -> tuple[str, str]:
            return await export(COLLECTION), await export(SENTINEL)

        env = Ts(session, session.guard(snapshot), adapter, raw)
        env.import_docs(SENTINEL, [{**doc, "id": f"sentinel-{doc['id']}"} for doc in SEEDS])
        env.reset()
        try:
            yield env
        finally:
            for name in (COLLECTION, SENTINEL):
                loop.run(raw.delete(f"/collections/{name}"))
            loop.run(adapter.disconnect())
            loop.run(raw.aclose())


# -- strategies --------------------------------------------------------------------------------

TRAVERSALS = (
    ".",
    "..",
    "../",
    "/",
    "./seed-0",
    f"../{SENTINEL}",
    f"../../collections/{SENTINEL}",
    f"..%2F..%2Fcollections%2F{SENTINEL}",
    "%2e%2e",
    "%2E%2E%2F",
    "seed-0/../seed-1",
    "seed-0?action=upsert",
    "seed-0#x",
    "seed-0%00",
    "seed-0\x00",
    " seed-0",
    "SEED-0",
)
doc_ids = st.one_of(
    st.sampled_from(SEED_IDS),
    st.sampled_from(TRAVERSALS),
    st.uuids().map(str),
    st.text(min_size=1, max_size=30),
    hostile_text(),
)
ts_text = hostile_text(injections=INJECTIONS["typesense"])
sessions = st.one_of(st.sampled_from(SEED_SESSIONS), st.text(max_size=20), ts_text)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False)
)
DOC_FIELDS = {
    "id": st.one_of(st.none(), doc_ids),
    "content": st.one_of(st.text(max_size=60), st.text(max_size=60), huge_text(), ts_text),
    "session_id": sessions,
    "fact_type": st.one_of(st.sampled_from(["fact", "preference"]), st.text(max_size=10)),
    "confidence": st.one_of(st.floats(0, 1), st.floats(), st.integers()),
    "created_at": st.one_of(st.none(), st.integers(0, 2**53), st.integers()),
    "metadata": st.one_of(
        st.none(),
        st.dictionaries(st.text(max_size=8), st.one_of(json_scalars, st.text(max_size=10))),
    ),
}
filter_values = st.one_of(
    sessions,
    st.lists(sessions, max_size=3),
    st.sampled_from(["fact", "preference", "billing", "travel"]),
    st.floats(),
    st.integers(),
    st.booleans(),
    any_value(),
)
filter_fields = st.one_of(
    st.sampled_from(["session_id", "fact_type", "confidence", "created_at", "metadata.topic"]),
    ts_text,
)
SEARCH_FIELDS = {
    "q": st.one_of(st.just("*"), st.sampled_from(["dark", "tea", "coffee", "cafe"]), ts_text),
    "query_by": st.sampled_from(["content", "content,fact_type"]),
    "filters": st.one_of(st.none(), st.dictionaries(filter_fields, filter_values, max_size=3)),
    "filter_by": st.one_of(st.none(), st.sampled_from(["confidence:>0.5", "created_at:>0"])),
    "sort_by": st.sampled_from(["created_at:desc", "confidence:asc"]),
    "limit": st.integers(0, 250),
    "page": st.integers(1, 3),
    "num_typos": st.integers(0, 2),
}


# -- checks ------------------------------------------------------------------------------------


def check_doc(ts: Ts, doc_id: str, given: dict[str, Any]) -> None:
    """The server holds the accepted document with every field as given."""
    held = ts.docs().get(doc_id)
    assert held is not None, f"accepted document {doc_id!r} is not in the collection"
    for key, value in json.loads(json.dumps(given)).items():
        if value is not None and key != "created_at":
            assert held.get(key) == value, f"field {key!r}: held {held.get(key)!r}"


def _import_partial(err: StorageError, before: Any, after: Any) -> bool:
    """A rejected import stored its valid documents: exactly those may have appeared."""
    if not isinstance(err, TypesenseImportError) or not err.stored_ids:
        return False
    kept = {json.loads(line)["id"] for line in _lines(after[0])}
    had = {json.loads(line)["id"] for line in _lines(before[0])}
    assert kept - had <= set(err.stored_ids), "an import stored documents it did not report"
    assert after[1] == before[1], "an import touched the sentinel collection"
    return True


# -- the properties ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["store", "upsert"])
def test_write_one(ts: Ts, method: str) -> None:
    def body(doc: Any) -> None:
        call = getattr(ts.adapter, method)
        out = ts.guard.attempt(method, lambda: call(doc), inputs=[doc])
        if out.ok:
            if doc.get("id") is not None:
                assert out.value == doc["id"]
            check_doc(ts, out.value, {k: v for k, v in doc.items() if k != "id"})
            ts.reset()

    explore(f"typesense.{method}", records(DOC_FIELDS), body)
    ts.guard.assert_exercised(method)


def test_store_many(ts: Ts) -> None:
    args = st.tuples(
        st.one_of(st.lists(records(DOC_FIELDS), max_size=4), any_value()),
        st.one_of(st.sampled_from(["upsert", "create", "update", "emplace"]), ts_text),
    )

    def body(example: Any) -> None:
        docs, action = example
        out = ts.guard.attempt(
            "store_many",
            lambda: ts.adapter.store_many(docs, action=action),
            partial=_import_partial,
            inputs=[docs],
        )
        if out.error is not None and getattr(out.error, "stored_ids", None):
            ts.reset()
        if out.ok:
            assert len(out.value) == len(list(docs))
            ts.reset()

    explore("typesense.store_many", args, body)
    ts.guard.assert_exercised("store_many")


def test_retrieve(ts: Ts) -> None:
    def body(doc_id: Any) -> None:
        out = ts.guard.attempt("retrieve", lambda: ts.adapter.retrieve(doc_id), pure=True)
        if out.ok and out.value is not None:
            assert doc_id in SEED_IDS, f"retrieve({doc_id!r}) returned {out.value!r}"
            assert out.value["id"] == doc_id

    explore("typesense.retrieve", maybe(doc_ids), body)
    ts.guard.assert_exercised("retrieve")


def test_search(ts: Ts) -> None:
    def body(query: Any) -> None:
        out = ts.guard.attempt("search", lambda: ts.adapter.search(query), pure=True)
        if out.ok:
            for doc in out.value:
                assert doc["id"] in SEED_IDS, f"search returned a foreign document: {doc!r}"
                for name, wanted in (query.get("filters") or {}).items():
                    values = wanted if isinstance(wanted, (list, tuple)) else [wanted]
                    if name in doc and all(isinstance(v, str) for v in values):
                        assert doc[name] in values, f"filter {name}={wanted!r} let {doc!r} in"

    queries = records(SEARCH_FIELDS, omit=0.3, wrong_values=st.one_of(ts_text, any_value()))
    explore("typesense.search", queries, body)
    ts.guard.assert_exercised("search")


def test_delete(ts: Ts) -> None:
    def body(doc_id: Any) -> None:
        out = ts.guard.attempt(
            "delete", lambda: ts.adapter.delete(doc_id), pure=lambda v: v is False
        )
        if out.ok and out.value:
            assert doc_id in SEED_IDS, f"delete({doc_id!r}) deleted something"
            ts.reset()

    explore("typesense.delete", maybe(doc_ids), body)
    ts.guard.assert_exercised("delete")


def test_no_secret_in_logs(ts: Ts) -> None:
    """Every record the calls above logged, at DEBUG (httpx and httpcore included), is free of
    the stack's secrets; the API key travels in every request header."""
    assert ts.session.watch.by_logger["httpcore"] > 0, "httpcore logged nothing at DEBUG"
    ts.session.watch.assert_clean()
