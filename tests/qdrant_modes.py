"""Which Qdrant the stack outputs point at, and how a test reaches it in each mode.

The rule every Qdrant test follows: **a suite tests what the outputs point at**.

* ``qdrant_url`` (the lab, or any server) -> **server** mode: the adapter and raw clients talk to
  that server with the outputs' ``qdrant_api_key``;
* ``qdrant_path`` (the local stack) -> **embedded** mode: the in-process engine (Qdrant Edge);
  tests use a private directory of their own unless they test the stack's own path;
* both keys -> both modes, each test once per mode; neither -> every Qdrant test skips.

Tests take the mode as a parameter (``[embedded]`` / ``[server]`` in their ids) and call
:func:`require_mode` first, which skips a mode the outputs do not name with a one-line reason.
An adapter config is always a complete mapping (:func:`adapter_config`): a mapping reads neither
the environment nor the outputs file, so an embedded config never turns into a server one just
because the outputs also name a server.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import qdrant_edge as qe
from qdrant_client import AsyncQdrantClient

__all__ = [
    "MODES",
    "Engine",
    "Mode",
    "adapter_config",
    "modes_of",
    "raw_client",
    "require_mode",
    "server_client",
    "skip_reason",
    "unique_collection",
]

Mode = Literal["embedded", "server"]
#: Both modes, in the order tests are parametrised.
MODES: tuple[Mode, ...] = ("embedded", "server")
#: What qdrant-client warns when an API key goes over plain http (``async_qdrant_remote.py``).
INSECURE_KEY_WARNING = "Api key is used with an insecure connection"


def modes_of(outputs: Mapping[str, Any]) -> tuple[Mode, ...]:
    """The modes the outputs name: ``server`` for ``qdrant_url``, ``embedded`` for
    ``qdrant_path``."""
    named: list[Mode] = []
    if outputs.get("qdrant_path"):
        named.append("embedded")
    if outputs.get("qdrant_url"):
        named.append("server")
    return tuple(named)


def skip_reason(outputs: Mapping[str, Any], mode: Mode) -> str | None:
    """Why a test of ``mode`` does not apply to these outputs (one line), or None."""
    if mode in modes_of(outputs):
        return None
    if mode == "server":
        return "the outputs name no Qdrant server (no qdrant_url): server mode does not apply"
    return "the outputs name no embedded Qdrant (no qdrant_path): embedded mode does not apply"


def require_mode(outputs: Mapping[str, Any], mode: Mode) -> None:
    """Skip the calling test when the outputs do not point at a Qdrant of ``mode``."""
    reason = skip_reason(outputs, mode)
    if reason:
        pytest.skip(reason)


def unique_collection(prefix: str = "test") -> str:
    """A collection name no other test (or session on the same server) uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def adapter_config(
    outputs: Mapping[str, Any], mode: Mode, *, path: Path | str | None = None, **extra: Any
) -> dict[str, Any]:
    """A complete ``QdrantAdapter`` config for ``mode``.

    Server: the outputs' ``qdrant_url`` and ``qdrant_api_key``. Embedded: ``path`` (a private
    directory), or the outputs' ``qdrant_path`` when none is given. ``extra`` (collection,
    vector size, timeouts...) is added as given.
    """
    if mode == "server":
        return {"url": outputs["qdrant_url"], "api_key": outputs.get("qdrant_api_key"), **extra}
    return {"path": str(path if path is not None else outputs["qdrant_path"]), **extra}


@contextlib.contextmanager
def _key_over_http(outputs: Mapping[str, Any]) -> Iterator[None]:
    """Expect qdrant-client's warning when the outputs send an API key over plain http.

    That is what the lab serves (no TLS on Qdrant), and the warning is right: the key crosses
    the network in clear. Under ``filterwarnings = error`` it would fail the test, so a raw
    client asserts it instead of letting it escape; over https no warning is expected, and any
    other warning still fails the test.
    """
    url = str(outputs["qdrant_url"])
    if outputs.get("qdrant_api_key") and url.startswith("http://"):
        with pytest.warns(UserWarning, match=INSECURE_KEY_WARNING):
            yield
    else:
        yield


def server_client(outputs: Mapping[str, Any], **kwargs: Any) -> AsyncQdrantClient:
    """A raw qdrant-client on the outputs' server (the caller closes it).

    Without the client's compatibility probe: it is a blocking request in a thread of its own
    that outlives the client and can only warn, so a server stopped or frozen by a fault test
    meanwhile failed the run at its end (``Failed to obtain server version``). The server's
    version is checked by ``test_backend_versions.py``.
    """
    kwargs.setdefault("check_compatibility", False)
    with _key_over_http(outputs):
        return AsyncQdrantClient(
            url=outputs["qdrant_url"], api_key=outputs.get("qdrant_api_key"), **kwargs
        )


@contextlib.asynccontextmanager
async def raw_client(outputs: Mapping[str, Any]) -> AsyncIterator[AsyncQdrantClient]:
    """A raw qdrant-client on the outputs' server, to check what it holds behind an adapter.

    (Embedded, the engine is Qdrant Edge: tests read its shards with ``qdrant_edge``.)
    """
    client = server_client(outputs)
    try:
        yield client
    finally:
        await client.close()


@dataclass(frozen=True)
class Engine:
    """What the engine of one test's mode holds, read without the adapter."""

    mode: Mode
    outputs: Mapping[str, Any]
    path: Path

    async def points(self, collection: str) -> dict[str, dict[str, Any]]:
        """Every point's payload by id (embedded: the adapter on it must be disconnected)."""
        if self.mode == "server":
            async with raw_client(self.outputs) as client:
                records, _ = await client.scroll(collection, limit=10_000, with_payload=True)
            return {str(r.id): dict(r.payload or {}) for r in records}
        shard = qe.EdgeShard.load(str(self.path / collection))
        try:
            found, _ = shard.scroll(qe.ScrollRequest(limit=10_000, with_payload=True))
            return {str(r.id): dict(r.payload or {}) for r in found}
        finally:
            shard.close()

    async def vector_size(self, collection: str) -> int:
        """The collection's vector size, as the engine persisted it."""
        if self.mode == "server":
            async with raw_client(self.outputs) as client:
                info = await client.get_collection(collection)
            return int(info.config.params.vectors.size)  # type: ignore[union-attr]
        config = json.loads((self.path / collection / "edge_config.json").read_text())
        return int(config["vectors"][""]["size"])
