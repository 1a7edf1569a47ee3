"""A small in-memory Typesense behind ``httpx.MockTransport`` for the adapter's unit tests.

It answers the endpoints the adapter uses the way Typesense 0.24.1 does (status codes, messages,
the import endpoint's one JSON line per input line), records every request, and lets a test
replace the answer of any route to inject failures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from mas_storage_typesense import TypesenseAdapter

API_KEY = "unit-test-key-8f3a9c"
URL = "http://127.0.0.1:61999"

Override = Callable[[httpx.Request], httpx.Response | None]


def _msg(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"message": message})


class FakeTypesense:
    """Collections and documents in dicts; ``overrides`` can take over any request first."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.collections: dict[str, dict[str, Any]] = {}
        self.docs: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests: list[httpx.Request] = []
        self.overrides: list[Override] = []
        self.search_results: dict[str, Any] | None = None

    # -- setup helpers -----------------------------------------------------------------------

    def add_collection(self, schema: dict[str, Any]) -> None:
        fields = [{"optional": False, **f} for f in schema["fields"]]
        self.collections[schema["name"]] = {**schema, "fields": fields, "num_documents": 0}
        self.docs[schema["name"]] = {}

    def fail(self, method: str, path_part: str, response: httpx.Response | Exception) -> None:
        """Answer (or raise) for requests of ``method`` whose path contains ``path_part``."""

        def override(request: httpx.Request) -> httpx.Response | None:
            if request.method == method and path_part in unquote(request.url.path):
                if isinstance(response, Exception):
                    raise response
                return response
            return None

        self.overrides.append(override)

    def paths(self, method: str | None = None) -> list[str]:
        return [unquote(r.url.path) for r in self.requests if method is None or r.method == method]

    # -- the handler -------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for override in self.overrides:
            answer = override(request)
            if answer is not None:
                return answer
        path = request.url.path
        if path == "/health":
            return httpx.Response(200, json={"ok": True})
        if request.headers.get("x-typesense-api-key") != self.api_key:
            return _msg(401, "Forbidden - a valid `x-typesense-api-key` header must be sent.")
        raw_path = request.url.raw_path.split(b"?")[0].decode()
        parts = [unquote(p) for p in raw_path.strip("/").split("/")]
        if parts == ["collections"] and request.method == "POST":
            return self._create_collection(json.loads(request.content))
        if len(parts) < 2 or parts[0] != "collections":
            return _msg(404, "Not Found")
        name = parts[1]
        if name not in self.collections:
            return _msg(404, "Not Found")
        if len(parts) == 2:
            if request.method == "DELETE":
                del self.collections[name], self.docs[name]
                return httpx.Response(200, json={"name": name})
            info = {**self.collections[name], "num_documents": len(self.docs[name])}
            return httpx.Response(200, json=info)
        docs = self.docs[name]
        rest = parts[3:] if len(parts) > 3 else []
        if rest == ["import"]:
            return self._import(name, request)
        if rest == ["search"]:
            return self._search(name, request)
        if not rest and request.method == "POST":
            return self._write(name, json.loads(request.content), request)
        if not rest and request.method == "DELETE":
            return httpx.Response(200, json={"num_deleted": len(docs)})
        if len(rest) == 1:
            doc_id = rest[0]
            if doc_id not in docs:
                return _msg(404, f"Could not find a document with id: {doc_id}")
            if request.method == "DELETE":
                return httpx.Response(200, json=docs.pop(doc_id))
            return httpx.Response(200, json=docs[doc_id])
        return _msg(404, "Not Found")

    def _create_collection(self, schema: dict[str, Any]) -> httpx.Response:
        if schema["name"] in self.collections:
            return _msg(409, f"A collection with name `{schema['name']}` already exists.")
        self.add_collection(schema)
        return httpx.Response(201, json=self.collections[schema["name"]])

    def _write(self, name: str, doc: dict[str, Any], request: httpx.Request) -> httpx.Response:
        docs = self.docs[name]
        action = request.url.params.get("action", "create")
        if action == "create" and doc["id"] in docs:
            return _msg(409, f"A document with id {doc['id']} already exists.")
        docs[doc["id"]] = doc
        return httpx.Response(201, json=doc)

    def _import(self, name: str, request: httpx.Request) -> httpx.Response:
        lines = []
        for raw in request.content.decode().split("\n"):
            try:
                doc = json.loads(raw)
            except json.JSONDecodeError:
                lines.append({"success": False, "error": "Bad JSON.", "document": raw})
                continue
            if doc.get("reject"):
                lines.append({"success": False, "error": f"Rejected {doc['id']}", "code": 400})
                continue
            self.docs[name][doc["id"]] = doc
            lines.append({"success": True})
        return httpx.Response(200, text="\n".join(json.dumps(x) for x in lines))

    def _search(self, name: str, request: httpx.Request) -> httpx.Response:
        if self.search_results is not None:
            return httpx.Response(200, json=self.search_results)
        hits = [
            {"document": d, "text_match": 100, "highlights": [{"field": "content"}]}
            for d in self.docs[name].values()
        ]
        body = {"found": len(hits), "out_of": len(hits), "page": 1, "hits": hits}
        return httpx.Response(200, json=body)


@pytest.fixture
def fake() -> FakeTypesense:
    return FakeTypesense()


@pytest.fixture
def make_adapter(fake: FakeTypesense) -> Callable[..., TypesenseAdapter]:
    """Build an adapter on the fake server; keyword arguments extend the config."""

    def make(**config: Any) -> TypesenseAdapter:
        base: dict[str, Any] = {"url": URL, "api_key": API_KEY, "collection_name": "facts"}
        base.update(config)
        return TypesenseAdapter(base, transport=httpx.MockTransport(fake))

    return make


@pytest.fixture
async def adapter(make_adapter: Callable[..., TypesenseAdapter]) -> Any:
    ts = make_adapter()
    await ts.connect()
    yield ts
    await ts.disconnect()


def _fact(**extra: Any) -> dict[str, Any]:
    return {
        "content": "User prefers dark mode",
        "session_id": "s-1",
        "fact_type": "preference",
        "confidence": 0.9,
        **extra,
    }


@pytest.fixture
def fact() -> Callable[..., dict[str, Any]]:
    """A factory of valid semantic-memory documents; keyword arguments add or replace fields."""
    return _fact


@pytest.fixture
def api_key() -> str:
    return API_KEY
