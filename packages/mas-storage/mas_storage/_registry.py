"""The adapter registry: dependency injection through entry points.

Each adapter package declares itself under the entry-point group ``mas_storage.adapters``.
Entry points are read on first lookup, and a kind's class is imported only when it is asked
for, so one broken plugin fails alone, with its name in the error. Business code asks for a
kind and never imports a concrete adapter class::

    adapter = create_adapter("postgres")                  # config from the settings sources
    adapter = create_adapter("redis", window_size=5)      # an override on top of the sources
    adapter = create_adapter("redis", {"url": ...})       # a complete explicit config

Each adapter class names its own settings model (``settings_model``): the registry knows no
model, so an adapter from another distribution brings its settings with it.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ._base import StorageAdapter
from ._exceptions import StorageDataError, StorageError

__all__ = [
    "ENTRY_POINT_GROUP",
    "AdapterNotFoundError",
    "available_adapters",
    "create_adapter",
    "get_adapter_class",
    "register_adapter",
    "stack_output_keys",
]

ENTRY_POINT_GROUP = "mas_storage.adapters"

_classes: dict[str, type[StorageAdapter]] = {}
_entry_points: dict[str, EntryPoint] | None = None


class AdapterNotFoundError(StorageError, LookupError):
    """No adapter is registered, or importable, under the requested kind."""


def _discovered() -> dict[str, EntryPoint]:
    global _entry_points
    if _entry_points is None:
        _entry_points = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return _entry_points


def available_adapters() -> list[str]:
    """Every kind that can be created: installed entry points plus explicit registrations."""
    return sorted(set(_discovered()) | set(_classes))


def register_adapter(kind: str, cls: type[StorageAdapter], *, replace: bool = False) -> None:
    """Register ``cls`` under ``kind`` by hand (tests, out-of-tree adapters)."""
    if not (isinstance(cls, type) and issubclass(cls, StorageAdapter)):
        raise TypeError(f"{cls!r} is not a StorageAdapter subclass")
    known = _classes.get(kind)
    if known is not None and known is not cls and not replace:
        raise ValueError(f"Adapter kind '{kind}' is already registered to {known.__qualname__}")
    _classes[kind] = cls


def get_adapter_class(kind: str) -> type[StorageAdapter]:
    """The adapter class for ``kind``, imported on first use."""
    if kind in _classes:
        return _classes[kind]
    ep = _discovered().get(kind)
    if ep is None:
        raise AdapterNotFoundError(
            f"No storage adapter of kind '{kind}' (install the package that provides it, e.g. "
            f"mas-storage-{kind} for a first-party backend); available: "
            f"{', '.join(available_adapters()) or 'none'}"
        )
    try:
        cls = ep.load()
    except Exception as exc:
        raise AdapterNotFoundError(
            f"Storage adapter '{kind}' ({ep.value}) failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, StorageAdapter)):
        raise AdapterNotFoundError(
            f"Entry point '{kind}' ({ep.value}) is not a StorageAdapter subclass"
        )
    _classes[kind] = cls
    return cls


def create_adapter(kind: str, config: Any = None, /, **overrides: Any) -> StorageAdapter:
    """Build the adapter for ``kind``.

    Without ``config``, its settings model reads the sources (environment, ``.env``, the
    stack-outputs file, defaults), with ``overrides`` on top as explicit arguments. A
    ``config`` (a mapping, a URL string or a settings instance) is used as it is; it cannot be
    combined with ``overrides``.
    """
    cls = get_adapter_class(kind)
    if overrides:
        if config is not None:
            raise StorageDataError(
                "create_adapter() takes a config or keyword overrides of the settings "
                "sources, not both"
            )
        config = cls.settings_model(**overrides)
    return cls(config)


def stack_output_keys() -> tuple[str, ...]:
    """Every stack-outputs key an installed adapter reads, sorted.

    Derived from each registered adapter's settings model (its ``StackOutput`` fields): the
    models are the one source of these names. Loads every adapter class.
    """
    keys: set[str] = set()
    for kind in available_adapters():
        keys.update(get_adapter_class(kind).settings_model.stack_output_keys().values())
    return tuple(sorted(keys))
