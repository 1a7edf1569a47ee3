"""TypesenseAdapter: L4 semantic memory, typo-tolerant full-text search over distilled facts.

One :class:`~._transport.Client` per adapter talks to Typesense's REST API (httpx's request and
response model over aiohttp, for the CPU it saves: see :mod:`._transport`): to the one server at
``url``, or to the nodes of a cluster (``nodes``), with failover by health and retries on the next
node (:mod:`._nodes`). The server's collection schema, read at connect time, drives document
validation and the fields a ``filters`` mapping may name. Errors are classified in
:mod:`._errors`; the core's operation wrapper does the rest.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Iterable, Mapping
from typing import Any, Literal, overload
from urllib.parse import quote

import httpx

from mas_storage import (
    DatabaseFacts,
    StorageAdapter,
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageNotFoundError,
    StorageQueryError,
    mask_url,
)

from ._errors import TypesenseImportError, error_for_response, map_httpx_error, server_message
from ._filters import build_filter, matches_exactly
from ._nodes import Failover
from ._schema import (
    DocumentRules,
    check_schema,
    default_schema,
    id_segment,
)
from ._settings import TypesenseSettings
from ._transport import AiohttpTransport, Client

__all__ = ["TypesenseAdapter"]

logger = logging.getLogger(__name__)

_IMPORT_ACTIONS = frozenset({"create", "upsert", "update", "emplace"})
#: Import actions that give the same result when a batch is sent twice (every line keyed by id).
_IDEMPOTENT_IMPORTS = frozenset({"upsert", "update", "emplace"})
#: Typesense's own search parameters passed through as given (besides q, query_by, filter_by).
_PASSTHROUGH = frozenset(
    {
        "facet_by",
        "sort_by",
        "page",
        "per_page",
        "include_fields",
        "exclude_fields",
        "num_typos",
        "typo_tokens_threshold",
        "prefix",
        "infix",
        "max_facet_values",
        "facet_query",
        "group_by",
        "group_limit",
        "highlight_fields",
        "highlight_full_fields",
        "query_by_weights",
        "drop_tokens_threshold",
        "exhaustive_search",
        "search_cutoff_ms",
        "pinned_hits",
        "hidden_hits",
        "prioritize_exact_match",
    }
)
_SEARCH_KEYS = _PASSTHROUGH | {"q", "query_by", "filter_by", "filters", "limit", "with_meta"}
_MAX_PER_PAGE = 250
_DOC_NOT_FOUND = "Could not find a document"


#: One encoder for every document (``json.dumps`` with options builds a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _dumps(doc: Mapping[str, Any]) -> str:
    """Compact JSON; NaN and infinities are refused (Typesense rejects them as bad JSON)."""
    return _ENCODER.encode(doc)


class TypesenseAdapter(StorageAdapter):
    """Typesense adapter for full-text search (L4 semantic memory).

    Configuration: a :class:`~mas_storage_typesense.TypesenseSettings` (every key, its default
    and bounds; ``None`` reads it from ``TYPESENSE_*``, ``.env`` and the stack outputs), or a
    mapping (the spec's ``schema`` is accepted for ``collection_schema``) validated by it.
    ``transport=`` injects an ``httpx.AsyncBaseTransport`` (tests pass a ``MockTransport``);
    the default is :class:`~mas_storage_typesense._transport.AiohttpTransport`.

    Example::

        async with TypesenseAdapter(TypesenseSettings()) as facts:
            await facts.store({"content": "User prefers dark mode", "session_id": "s-1",
                               "fact_type": "preference", "confidence": 0.9})
            hits = await facts.search({"q": "darkk mode", "filters": {"session_id": "s-1"}})
    """

    kind = "typesense"
    settings_model = TypesenseSettings
    config: TypesenseSettings

    def __init__(
        self, config: Any = None, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(config)
        cfg = self.config
        self.url = cfg.url
        self.collection_name = cfg.collection_name
        self.schema: dict[str, Any] = (
            {**cfg.collection_schema, "name": self.collection_name}
            if cfg.collection_schema is not None
            else default_schema(self.collection_name)
        )
        self._transport = transport
        self._client: Client | None = None
        self._failover: Failover | None = None  # a cluster (``nodes``); None: one server
        self._fields: dict[str, dict[str, Any]] = {}
        self._rules = DocumentRules({})
        self._docs_path = f"/collections/{quote(self.collection_name, safe='')}/documents"

    # -- plumbing ----------------------------------------------------------------------------

    def _map_error(self, exc: Exception, op: str) -> type[StorageError] | StorageError | None:
        """httpx transport failures and unreadable answers (see ``_errors``)."""
        if isinstance(exc, json.JSONDecodeError):
            return StorageQueryError(f"Typesense sent an answer that is not JSON: {exc}")
        return map_httpx_error(exc, self.url)

    def _new_client(self) -> Client:
        """The one client: ``base_url`` is the one server; a cluster's requests name their node
        (one pool holds every node's connections; the TLS context verifies them all)."""
        cfg = self.config
        nodes = cfg.node_urls
        verify: ssl.SSLContext | bool = (
            cfg.ssl_context(f"typesense at {self._server()}") if cfg.uses_tls() else True
        )
        transport = self._transport or AiohttpTransport(
            verify=verify,
            # One server: the transport retries a refused connect. A cluster: the next node.
            retries=cfg.retries if len(nodes) == 1 else 0,
            max_connections=cfg.max_connections,
        )
        if len(nodes) > 1:
            assert cfg.connect_timeout is not None  # derived by the settings
            self._failover = Failover(
                nodes,
                timeout=cfg.timeout,
                connect_timeout=cfg.connect_timeout,
                num_retries=cfg.num_retries,
                retry_interval=cfg.retry_interval_seconds,
                healthcheck_interval=cfg.healthcheck_interval_seconds,
            )
        return Client(
            base_url=self.url,
            headers={"X-TYPESENSE-API-KEY": cfg.api_key.get_secret_value()},
            timeout=httpx.Timeout(cfg.timeout, connect=cfg.connect_timeout),
            transport=transport,
        )

    @property
    def _http(self) -> Client:
        if self._client is None:  # a disconnect() raced with a running operation
            raise StorageConnectionError("Typesense client is closed", backend=self.kind)
        return self._client

    async def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        ok: Iterable[int] = (200, 201),
        idempotent: bool | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request; any status outside ``ok`` raises the mapped storage error.

        ``idempotent``: sending it twice changes nothing (default: a GET), so a cluster may
        send it again to the next node after any failure; see :mod:`._nodes`.
        """
        failover = self._failover
        if failover is None:
            response = await self._http.request(method, path, **kwargs)
        else:
            again = method == "GET" if idempotent is None else idempotent
            response = await failover.send(self._http, method, path, again, kwargs)
        if response.status_code not in ok:
            raise error_for_response(response, what)
        return response

    def _doc_path(self, doc_id: str) -> str:
        if not isinstance(doc_id, str) or not doc_id:
            raise StorageDataError(f"Document id must be a non-empty string, got {doc_id!r}")
        return f"{self._docs_path}/{id_segment(doc_id)}"

    def _is_missing_doc(self, response: httpx.Response) -> bool:
        """A 404 for the document itself (not for a missing collection).

        Searched for, not matched at the start: for an id holding a NUL character Typesense
        cuts its JSON answer at the NUL, and only the raw text is left to read.
        """
        return response.status_code == 404 and _DOC_NOT_FOUND in server_message(response)

    def _telemetry_facts(self) -> DatabaseFacts:
        """Span/metric facts: the server and the adapter's collection."""
        return DatabaseFacts.from_url("typesense", self.url, 8108, collection=self.collection_name)

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Check the server (``/health``) and the key, then ensure the collection and schema."""
        if self._connected:
            return
        self._client = self._new_client()
        try:
            health = await self._request("GET", "/health", "health check", ok=(200, 503))
            if health.status_code != 200 or health.json().get("ok") is not True:
                raise StorageConnectionError(
                    f"Typesense at {mask_url(self.url)} is not ready: health check answered "
                    f"HTTP {health.status_code}: {server_message(health)}"
                )
            await self._ensure_collection()
        except BaseException:
            await self._close_client()
            raise
        self._connected = True
        nodes = self.config.node_urls
        where = (
            mask_url(self.url) if len(nodes) == 1 else f"{len(nodes)} nodes ({', '.join(nodes)})"
        )
        logger.info("Connected to Typesense at %s (collection %s)", where, self.collection_name)

    async def _ensure_collection(self) -> None:
        """Create the collection when absent (a concurrent creator's 409 is fine), then check it."""
        path = f"/collections/{quote(self.collection_name, safe='')}"
        response = await self._request("GET", path, "collection lookup", ok=(200, 404))
        if response.status_code == 404:
            created = await self._request(
                "POST",
                "/collections",
                f"creating collection '{self.collection_name}'",
                ok=(200, 201, 409, 401, 403),
                content=_dumps(self.schema),
            )
            if created.status_code in (401, 403):
                raise StorageConnectionError(
                    f"Typesense collection '{self.collection_name}' does not exist and this API "
                    "key may not create it (a scoped key): provision it with the admin key "
                    "('python -m mas_storage_typesense.provision'; docs/security.md)"
                )
            if created.status_code == 409:
                response = await self._request("GET", path, "collection lookup")
            else:
                response = created
                logger.info("Created Typesense collection %s", self.collection_name)
        info = response.json()
        self._fields = {f["name"]: f for f in info.get("fields", []) if "name" in f}
        check_schema(self.schema, self._fields, self.collection_name)
        self._rules = DocumentRules(self._fields)

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        self._failover = None
        if client is not None:
            await client.aclose()

    async def disconnect(self) -> None:
        """Close the HTTP client; safe to call twice or before ``connect``."""
        await self._close_client()
        self._connected = False

    # -- writes ------------------------------------------------------------------------------

    async def store(self, data: dict[str, Any]) -> str:
        """Index a new document and return its id (a UUID when ``data`` has none).

        ``created_at`` (epoch ms) is set when absent. An existing id raises
        :class:`StorageDataError`: use :meth:`upsert` to replace.
        """
        return await self._write_one(data, "create")

    async def upsert(self, data: dict[str, Any]) -> str:
        """Index ``data``, replacing any document with the same id; return the id."""
        return await self._write_one(data, "upsert")

    async def _write_one(self, data: dict[str, Any], action: str) -> str:
        doc = self._rules.prepare(data)
        params = {"action": action} if action != "create" else None
        response = await self._request(
            "POST",
            self._docs_path,
            f"{action} of document {doc['id']!r}",
            idempotent=action == "upsert",  # keyed by its id: a second send replaces
            params=params,
            content=_dumps(doc),
            headers={"Content-Type": "application/json"},
        )
        return str(response.json().get("id", doc["id"]))

    async def store_many(
        self, documents: Iterable[Mapping[str, Any]], *, action: str = "upsert"
    ) -> list[str]:
        """Import documents through JSONL ``/documents/import``; return their ids in order.

        The endpoint answers 200 even when lines fail, so every result line is read. Documents
        that fail local validation are not sent. When any document fails, the others are still
        stored and :class:`TypesenseImportError` (a ``StorageDataError``) lists each failed
        line's index and error. An empty batch sends nothing.
        """
        if action not in _IMPORT_ACTIONS:
            raise StorageDataError(
                f"Import action must be one of {sorted(_IMPORT_ACTIONS)}, got {action!r}"
            )
        docs = list(documents)
        failures: list[tuple[int, str | None, str]] = []
        ok_ids: dict[int, str] = {}
        ready: list[tuple[int, str, str]] = []  # (input index, id, JSON line)
        for index, data in enumerate(docs):
            try:
                doc = self._rules.prepare(data)
                ready.append((index, doc["id"], _dumps(doc)))
            except (StorageDataError, ValueError, TypeError) as exc:
                doc_id = data.get("id") if isinstance(data, Mapping) else None
                failures.append((index, doc_id if isinstance(doc_id, str) else None, str(exc)))
        batch_size = self.config.import_batch_size
        for start in range(0, len(ready), batch_size):
            chunk = ready[start : start + batch_size]
            results = await self._import_chunk([line for _, _, line in chunk], action)
            for (index, doc_id, _), result in zip(chunk, results, strict=True):
                if result.get("success") is True:
                    ok_ids[index] = doc_id
                else:
                    failures.append((index, doc_id, str(result.get("error", "rejected"))))
        stored = [ok_ids[i] for i in sorted(ok_ids)]
        if failures:
            failures.sort(key=lambda f: f[0])
            raise TypesenseImportError.from_failures(failures, len(docs), stored)
        return stored

    async def _import_chunk(self, lines: list[str], action: str) -> list[dict[str, Any]]:
        """POST one JSONL chunk; return one parsed result per line, in order."""
        response = await self._request(
            "POST",
            f"{self._docs_path}/import",
            f"import of {len(lines)} documents",
            idempotent=action in _IDEMPOTENT_IMPORTS,
            params={"action": action},
            content="\n".join(lines).encode(),
            headers={"Content-Type": "text/plain"},
        )
        results = [json.loads(line) for line in response.text.splitlines() if line.strip()]
        if len(results) != len(lines):
            raise StorageQueryError(
                f"Typesense import answered {len(results)} result lines for {len(lines)} documents"
            )
        return results

    # -- reads -------------------------------------------------------------------------------

    async def retrieve(self, id: str) -> dict[str, Any] | None:
        """The document stored under ``id``, or ``None`` when there is none."""
        response = await self._request(
            "GET", self._doc_path(id), f"retrieve of {id!r}", ok=(200, 404)
        )
        if response.status_code == 404:
            if self._is_missing_doc(response):
                return None
            raise error_for_response(response, f"retrieve of {id!r}")
        doc: dict[str, Any] = response.json()
        return doc

    @overload
    async def search(
        self, query: dict[str, Any], *, with_meta: Literal[False] = False
    ) -> list[dict[str, Any]]: ...

    @overload
    async def search(
        self, query: dict[str, Any], *, with_meta: Literal[True]
    ) -> dict[str, Any]: ...

    async def search(
        self, query: dict[str, Any], *, with_meta: bool = False
    ) -> list[dict[str, Any]] | dict[str, Any]:
        """Typo-tolerant full-text search.

        Keys: ``q`` (required; ``"*"`` matches all), ``query_by`` (default ``"content"``),
        ``filters`` (``{field: value | [values]}``, quoted safely), ``filter_by`` (raw Typesense
        syntax, the caller's own text: never user input), ``facet_by``, ``sort_by``, ``limit``
        (per page, default 10, max 250), ``page`` (from 1), and Typesense's other search
        parameters by name.

        Typesense matches string filters by tokens (case and symbols ignored), so hits whose
        value is not exactly one of the ``filters`` values are dropped here: a page may then
        hold fewer than ``limit`` documents, and ``found``/``facet_counts`` stay the server's.

        Returns the matching documents. With ``with_meta=True`` returns ``{"hits": [{"document",
        "text_match", "highlights"}], "found", "out_of", "page", "facet_counts",
        "search_time_ms"}``.
        """
        params = self._search_params(query)
        with_meta = with_meta or bool(query.get("with_meta", False))
        response = await self._request(
            "GET", f"{self._docs_path}/search", "search", ok=(200,), params=params
        )
        result = response.json()
        hits = result.get("hits", [])
        filters = query.get("filters")
        if filters:  # the server matched by tokens; keep only the exact values
            hits = [hit for hit in hits if matches_exactly(hit["document"], filters)]
        if not with_meta:
            return [hit["document"] for hit in hits]
        return {
            "hits": [
                {
                    "document": hit["document"],
                    "text_match": hit.get("text_match"),
                    "highlights": hit.get("highlights", []),
                }
                for hit in hits
            ],
            "found": result.get("found", 0),
            "out_of": result.get("out_of"),
            "page": result.get("page", params.get("page", 1)),
            "facet_counts": result.get("facet_counts", []),
            "search_time_ms": result.get("search_time_ms"),
        }

    def _search_params(self, query: Any) -> dict[str, Any]:
        """Validate a search query and turn it into Typesense's query-string parameters."""
        if not isinstance(query, Mapping):
            raise StorageDataError(f"A search query must be a mapping, not {type(query).__name__}")
        unknown = sorted(set(query) - _SEARCH_KEYS)
        if unknown:
            raise StorageDataError(
                f"Unknown search keys: {', '.join(map(str, unknown))} "
                f"(known: {', '.join(sorted(_SEARCH_KEYS))})"
            )
        q = query.get("q")
        if not isinstance(q, str):
            raise StorageDataError("Search needs 'q', a string ('*' matches every document)")
        params: dict[str, Any] = {
            k: v for k, v in query.items() if k in _PASSTHROUGH and v is not None
        }
        params["q"] = q
        params["query_by"] = query.get("query_by") or "content"
        limit = query.get("limit", params.pop("per_page", 10))
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= _MAX_PER_PAGE:
            raise StorageDataError(f"'limit' must be an int from 0 to {_MAX_PER_PAGE}")
        params["per_page"] = limit
        page = params.get("page", 1)
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise StorageDataError("'page' must be an int of at least 1")
        clauses = []
        if query.get("filter_by"):
            clauses.append(str(query["filter_by"]))
        if query.get("filters"):
            clauses.append(build_filter(query["filters"], self._fields))
        if len(clauses) == 2:
            params["filter_by"] = f"({clauses[0]}) && {clauses[1]}"
        elif clauses:
            params["filter_by"] = clauses[0]
        for key, value in params.items():
            if isinstance(value, bool):
                params[key] = "true" if value else "false"
            elif isinstance(value, (list, tuple)):
                params[key] = ",".join(map(str, value))
        return params

    async def count(self) -> int:
        """The number of documents in the collection (Typesense's ``num_documents``)."""
        return await self._count()

    async def _count(self) -> int:
        info = await self._request(
            "GET", f"/collections/{quote(self.collection_name, safe='')}", "collection lookup"
        )
        return int(info.json().get("num_documents", 0))

    # -- deletes -----------------------------------------------------------------------------

    async def delete(self, id: str) -> bool:
        """Delete ``id``: ``False`` only when it does not exist; any failure raises."""
        response = await self._request(
            "DELETE", self._doc_path(id), f"delete of {id!r}", ok=(200, 404)
        )
        if response.status_code == 404:
            if self._is_missing_doc(response):
                return False
            raise error_for_response(response, f"delete of {id!r}")
        return True

    async def drop_collection(self) -> bool:
        """Drop this adapter's whole collection: ``False`` when it did not exist.

        The adapter stays connected but its operations fail until the collection is recreated
        (``disconnect()`` then ``connect()``).
        """
        path = f"/collections/{quote(self.collection_name, safe='')}"
        response = await self._request(
            "DELETE", path, f"drop of collection '{self.collection_name}'", ok=(200, 404)
        )
        return response.status_code == 200

    # -- metrics -----------------------------------------------------------------------------

    async def _get_backend_metrics(self) -> dict[str, Any] | None:
        """The collection's document count, fetched on request only."""
        try:
            count: int | None = await self._count()
        except StorageNotFoundError:
            count = None
        return {"collection": self.collection_name, "document_count": count}
