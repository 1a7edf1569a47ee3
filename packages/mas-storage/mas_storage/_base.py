"""The abstract adapter every backend implements: lifecycle, the generic contract
(``store``/``retrieve``/``search``/``delete``), error hooks and metrics."""

from __future__ import annotations

import asyncio
import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar, Self

from ._exceptions import StorageConnectionError, StorageError
from ._operations import OPERATION_ATTR, operation, translate_error
from ._settings import AdapterSettings
from ._telemetry import DatabaseFacts
from .metrics import MetricsCollector, check_format
from .metrics import export as export_report

__all__ = ["AdapterConfig", "StorageAdapter"]

AdapterConfig = Mapping[str, Any]

#: Public coroutine methods of the base that are not operations (they must not be timed).
_NOT_OPERATIONS = frozenset({"get_metrics", "export_metrics", "reset_metrics"})


class StorageAdapter(ABC):
    """Async adapter to one storage backend.

    Subclasses implement ``connect``, ``disconnect``, ``store``, ``retrieve``, ``search`` and
    ``delete`` and may add batch and domain methods. Every public coroutine method a subclass
    defines is wrapped, when the class is created, by :func:`mas_storage.operation`: the
    connection check, metrics, error translation and logging exist once, here.

    ``config`` is ``None`` (read the settings sources), an instance of the adapter's
    :attr:`settings_model`, a mapping (a complete explicit config) or a URL string; it is
    validated once, here, and kept as ``self.config``.

    Connection is explicit by default: an operation before ``connect()`` raises
    :class:`StorageConnectionError`. With ``auto_connect: true`` in the config, the first
    operation connects, once, even when many tasks make their first call together.

    Usage::

        async with create_adapter("redis") as cache:
            await cache.store({...})
    """

    #: The registry name of the backend ("postgres", "redis", ...).
    kind: ClassVar[str] = "storage"
    #: The adapter's settings model: every key it reads (see :mod:`mas_storage._settings`).
    #: Each adapter package declares its own; a third-party adapter brings its own too.
    settings_model: ClassVar[type[AdapterSettings]] = AdapterSettings

    def __init__(self, config: Any = None) -> None:
        #: The validated settings (an instance of :attr:`settings_model`); never re-parsed.
        self.config: AdapterSettings = type(self).settings_model.from_config(config)
        self._connected = False
        self._auto_connect = self.config.auto_connect
        self._connect_lock: asyncio.Lock | None = None
        self._secret_values = tuple(self.config.secret_values())
        self.metrics = MetricsCollector(
            self.config.metrics, adapter=self.kind, secrets=self._secret_values
        )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = cls.settings_model
        if not (isinstance(model, type) and issubclass(model, AdapterSettings)):
            raise TypeError(f"{cls.__qualname__}.settings_model must subclass AdapterSettings")
        for attr, value in list(vars(cls).items()):
            if attr.startswith("_") or attr in _NOT_OPERATIONS:
                continue
            if not inspect.iscoroutinefunction(value) or hasattr(value, OPERATION_ATTR):
                continue
            connects = attr in ("connect", "disconnect")
            setattr(cls, attr, operation(attr, connects=connects)(value))

    # -- lifecycle ---------------------------------------------------------------------------

    @abstractmethod
    async def connect(self) -> None:
        """Open the backend's client or pool and verify it answers; set ``_connected``."""

    @abstractmethod
    async def disconnect(self) -> None:
        """Close what ``connect`` opened. Safe to call twice, or before ``connect``."""

    @property
    def is_connected(self) -> bool:
        """Whether ``connect()`` succeeded and ``disconnect()`` has not run since."""
        return self._connected

    async def __aenter__(self) -> Self:
        try:
            await self.connect()
        except BaseException:
            # A half-opened pool or client must not leak when connect fails.
            await asyncio.shield(self.disconnect())
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.shield(self.disconnect())

    async def _require_connection(self, op: str) -> None:
        """Connect lazily when ``auto_connect`` is on, else refuse the call."""
        if not self._auto_connect:
            raise StorageConnectionError(
                f"{type(self).__name__} is not connected: call connect() or use 'async with' "
                f"before {op}() (or set auto_connect: true)",
                backend=self.kind,
                operation=op,
            )
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if not self._connected:
                await self.connect()

    # -- the generic contract ----------------------------------------------------------------

    @abstractmethod
    async def store(self, data: dict[str, Any]) -> str:
        """Store one record and return its id. Never mutates ``data``."""

    @abstractmethod
    async def retrieve(self, id: str) -> dict[str, Any] | None:
        """Return the record stored under ``id``, or ``None`` when there is none."""

    @abstractmethod
    async def search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Return the records matching ``query`` (backend-specific keys), possibly none."""

    @abstractmethod
    async def delete(self, id: str) -> bool:
        """Delete ``id``. ``False`` means it did not exist; a failure raises."""

    # -- hooks for subclasses ----------------------------------------------------------------

    def _map_error(self, exc: Exception, op: str) -> type[StorageError] | StorageError | None:
        """Classify a driver exception. ``None`` falls back to the core's generic rules.

        Return a class to keep the driver's message, or an instance to replace it. Either way
        the message is redacted before it is raised.
        """
        return None

    async def _get_backend_metrics(self) -> dict[str, Any] | None:
        """Backend-side figures, fetched on request only (never on the hot path)."""
        return None

    def _telemetry_facts(self) -> DatabaseFacts:
        """Facts for OpenTelemetry attributes (``db.system.name``, ``server.address``...).

        Asked once per adapter when spans or OTel metrics are on; never secrets. The core
        makes every span and metric itself (:mod:`mas_storage._telemetry`).
        """
        return DatabaseFacts(system=self.kind)

    def _server(self) -> str:
        """``host:port`` of the backend (from :meth:`_telemetry_facts`; never credentials),
        or ``""`` when it has no network address: for TLS messages and warnings."""
        facts = self._telemetry_facts()
        if not facts.server_address:
            return ""
        port = f":{facts.server_port}" if facts.server_port else ""
        return f"{facts.server_address}{port}"

    # -- metrics -----------------------------------------------------------------------------

    async def get_metrics(self) -> dict[str, Any]:
        """The collector's figures plus backend-specific ones when connected."""
        data = await self.metrics.get_metrics()
        data["adapter_type"] = self.kind
        if self._connected:
            try:
                backend = await self._get_backend_metrics()
            except StorageError:
                raise
            except Exception as exc:
                raise translate_error(self, exc, "get_metrics") from exc
            if backend:
                data["backend_specific"] = backend
        return data

    async def export_metrics(self, format: str = "dict") -> dict[str, Any] | str:
        """Export :meth:`get_metrics` as ``dict``, ``json``, ``prometheus``, ``csv`` or
        ``markdown`` (backend-specific figures included)."""
        check_format(format)
        return export_report(await self.get_metrics(), format)

    async def reset_metrics(self) -> None:
        """Forget every recorded figure."""
        await self.metrics.reset_metrics()

    def __repr__(self) -> str:
        # Never the config: it holds credentials.
        state = "connected" if self._connected else "disconnected"
        return f"<{type(self).__name__} kind={self.kind!r} {state}>"
