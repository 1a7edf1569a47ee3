"""The shared base of every adapter's settings model (pydantic-settings).

Each adapter package owns ONE model, a subclass of :class:`AdapterSettings`, that declares every
key its adapter reads: type, default, bounds and description, in one place. The adapter class
names it (``settings_model: ClassVar[type[AdapterSettings]]``) and holds the validated instance
as ``adapter.config``; nothing re-parses a dict. The core knows none of the models: it only
provides what they share, here.

Where a model's values come from, highest first:

1. explicit arguments (``RedisSettings(window_size=5)``,
   ``create_adapter("redis", window_size=5)``);
2. the process environment, then a ``.env`` file in the working directory, each field under the
   model's prefix (``REDIS_WINDOW_SIZE``; nested keys with ``__``: ``REDIS_METRICS__ENABLED``);
3. the stack-outputs file, for the fields that declare a :class:`StackOutput` key (what
   ``pulumi stack output --json --show-secrets`` prints on the lab and ``mas-devstack up``
   writes locally). Its path is ``$MAS_STACK_OUTPUTS``, by default ``.mas/stack-outputs.json``;
4. the field's default (loopback addresses of the local stack).

A mapping (or a URL string) given as an adapter's config is a complete, explicit config: it is
validated by the same model, strictly (Python types: ``"5"`` for an int is a mistake in code,
while the environment can only give strings), with the defaults for what it leaves out, and
reads neither the environment nor the outputs file (tests and embedders get exactly what they
wrote).

Rules every model inherits:

* **Unknown keys are refused** in explicit arguments and mappings, with a
  :class:`~mas_storage.StorageDataError` naming the key (and the nearest known one). Unknown
  variables in the environment and ``.env`` are *ignored*: both are shared with other software
  (Kubernetes service links set ``REDIS_SERVICE_HOST``; a docker-compose ``.env`` for the
  postgres image holds ``POSTGRES_PASSWORD``). Unknown keys of the outputs file are ignored
  too: Pulumi exports whatever the program exports.
* **No secret is echoed**: credentials are ``SecretStr``, an invalid value is reported by field
  and rule only, never by value.
* **Bools are not numbers**: ``True`` is refused where an int or a number of seconds is expected
  (:data:`Integer`, :data:`Seconds`), although Python's bool is an int.
* **Node lists** (:data:`NodeList`) come as a JSON array or a comma-separated string, from the
  environment and from the outputs file alike.
* **Key groups** (:attr:`AdapterSettings.key_groups`) come from one source: keys that say one
  thing together (a node's ``url`` and a cluster's ``nodes``) are taken from the highest source
  that gives any of them, and a lower source's values for the group are ignored. So
  ``TYPESENSE_URL`` in the environment names the server, whatever cluster the outputs file
  lists.

Adding a setting is one declaration in the package's model; its environment variable follows
from the field name, and ``Annotated[..., StackOutput("<key>")]`` makes the outputs file feed it.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from ._exceptions import StorageDataError
from ._redact import mask_url
from .metrics._settings import MetricsSettings

__all__ = [
    "ADMIN_OUTPUTS_ENV",
    "DEFAULT_ADMIN_OUTPUTS",
    "DEFAULT_STACK_OUTPUTS",
    "STACK_OUTPUTS_ENV",
    "AdapterSettings",
    "StackOutput",
    "admin_outputs_path",
    "load_admin_outputs",
    "load_stack_outputs",
    "stack_outputs_path",
]

DEFAULT_STACK_OUTPUTS = ".mas/stack-outputs.json"
STACK_OUTPUTS_ENV = "MAS_STACK_OUTPUTS"
#: The admin outputs: owner and admin credentials, which no adapter reads (docs/security.md).
DEFAULT_ADMIN_OUTPUTS = ".mas/stack-admin.json"
ADMIN_OUTPUTS_ENV = "MAS_STACK_ADMIN"
_OUTPUT_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_MASKED = "[secret]"


# -- the field vocabulary ----------------------------------------------------------------------


class StackOutput:
    """Field marker: the stack-outputs key that feeds this field.

    ``url: Annotated[SecretStr, StackOutput("redis_url")] = Field(...)``. A field without it
    is never read from the outputs file. ``admin=True``: the key lives in the **admin**
    outputs file (``$MAS_STACK_ADMIN``, default ``.mas/stack-admin.json``), which holds the
    owner and admin credentials that migrations and provisioning use and no adapter reads.
    """

    __slots__ = ("admin", "key")

    def __init__(self, key: str, *, admin: bool = False) -> None:
        if not _OUTPUT_KEY.match(key):
            raise ValueError(f"stack output key {key!r} must match {_OUTPUT_KEY.pattern}")
        self.key = key
        self.admin = admin

    def __repr__(self) -> str:
        return f"StackOutput({self.key!r}{', admin=True' if self.admin else ''})"


# -- the stack-outputs file ----------------------------------------------------------------------


def stack_outputs_path() -> tuple[Path, bool]:
    """The outputs file to read, and whether the user named it explicitly."""
    named = os.environ.get(STACK_OUTPUTS_ENV)
    return (Path(named), True) if named else (Path(DEFAULT_STACK_OUTPUTS), False)


def admin_outputs_path() -> tuple[Path, bool]:
    """The admin outputs file to read, and whether the user named it explicitly."""
    named = os.environ.get(ADMIN_OUTPUTS_ENV)
    return (Path(named), True) if named else (Path(DEFAULT_ADMIN_OUTPUTS), False)


def load_admin_outputs(path: Path | None = None, *, required: bool | None = None) -> dict[str, Any]:
    """Read the admin outputs file (same rules as :func:`load_stack_outputs`)."""
    if path is None:
        path, named = admin_outputs_path()
        required = named if required is None else required
    return load_stack_outputs(path, required=required)


def load_stack_outputs(path: Path | None = None, *, required: bool | None = None) -> dict[str, Any]:
    """Read a stack-outputs file: its JSON object, ``null`` values left out.

    ``{}`` when the default file is absent and was not named. Raises
    :class:`StorageDataError` naming the file when it was named (or ``required``) but is
    missing, is not JSON, is not an object, or holds a value Pulumi masked as ``"[secret]"``.
    Every key is kept (a Pulumi program exports what it likes); each settings model picks its
    own keys and validates their values.
    """
    if path is None:
        path, named = stack_outputs_path()
    else:
        named = True
    if required is not None:
        named = required
    if not path.is_file():
        if named:
            raise StorageDataError(
                f"Stack outputs file {path} does not exist (set {STACK_OUTPUTS_ENV} to an "
                "existing file, or run 'mas-devstack up' to write the local one)"
            )
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, json.JSONDecodeError) as exc:
        raise StorageDataError(f"Stack outputs file {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise StorageDataError(
            f"Stack outputs file {path} must hold a JSON object, not {type(raw).__name__}"
        )
    for key, value in raw.items():
        if value == _MASKED:
            raise StorageDataError(
                f"Stack outputs file {path}: key '{key}' is masked as '{_MASKED}'; write the "
                "file with 'pulumi stack output --json --show-secrets'"
            )
    return {k: v for k, v in raw.items() if v is not None}


class _StackOutputsSource(PydanticBaseSettingsSource):
    """The outputs file, through the model's :class:`StackOutput` markers."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ maps the whole file at once

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for admin, load in ((False, load_stack_outputs), (True, load_admin_outputs)):
            keys = _output_keys(self.settings_cls, admin=admin)
            if keys:
                outputs = load()
                found.update({field: outputs[key] for field, key in keys.items() if key in outputs})
        return found


class _GroupedSource(PydanticBaseSettingsSource):
    """A source whose values for a key group are dropped when a higher source gave any key of
    that group (:attr:`AdapterSettings.key_groups`)."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        inner: PydanticBaseSettingsSource,
        groups: tuple[frozenset[str], ...],
    ) -> None:
        super().__init__(settings_cls)
        self._inner = inner
        self._groups = groups

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ asks the wrapped source

    def __call__(self) -> dict[str, Any]:
        found = self._inner()
        higher = self.current_state  # what the sources above this one gave, merged
        for group in self._groups:
            if not group.isdisjoint(higher):
                found = {key: value for key, value in found.items() if key not in group}
        return found

    def __repr__(self) -> str:
        return f"_GroupedSource({self._inner!r})"


class _KnownDotEnvSource(DotEnvSettingsSource):
    """``.env`` read like the environment: the model's own variables only, the rest ignored."""

    def __call__(self) -> dict[str, Any]:
        return EnvSettingsSource.__call__(self)


def _output_keys(cls: type[BaseSettings], *, admin: bool = False) -> dict[str, str]:
    """Field name -> outputs key, for the fields marked :class:`StackOutput` (those of the
    admin file with ``admin=True``, else those of the stack-outputs file)."""
    keys: dict[str, str] = {}
    for name, field in cls.model_fields.items():
        for marker in field.metadata:
            if isinstance(marker, StackOutput) and marker.admin == admin:
                keys[name] = marker.key
    return keys


# -- the base model ----------------------------------------------------------------------------


class AdapterSettings(BaseSettings):
    """Settings every adapter shares; each adapter package subclasses it once.

    A subclass sets ``model_config = SettingsConfigDict(env_prefix="REDIS_")`` and declares its
    fields. A model without a prefix (this base, used by adapters that declare no model of
    their own) reads explicit values only, never the environment or the outputs file.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        validate_default=True,
    )

    auto_connect: bool = Field(
        False,
        description="connect on the first operation (once, even under concurrent first calls) "
        "instead of refusing calls before connect()",
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings,
        description="the operation metrics collector: a mapping of its keys (docs/metrics.md), "
        "or false to switch it off",
    )

    #: Other names a mapping may give a key (the spec's, e.g. ``{"uri": "url"}``).
    key_aliases: ClassVar[dict[str, str]] = {}
    #: Keys that come from one source: the highest source that gives any key of a group gives
    #: the group, and lower sources' values for it are ignored (``url`` and ``nodes``: a
    #: server named in the environment is not mixed with a cluster listed in the outputs).
    key_groups: ClassVar[tuple[frozenset[str], ...]] = ()

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _config_error(type(self), exc, sources=True) from None
        except SettingsError as exc:  # a variable that is not valid JSON for a complex field
            raise StorageDataError(f"Invalid {type(self).__name__}: {exc}") from None

    @model_validator(mode="before")
    @classmethod
    def _raw_values(cls, data: Any) -> Any:
        """Rename :attr:`key_aliases`, then let the model derive values (:meth:`prepare`)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for alias, name in cls.key_aliases.items():
            if alias in data:
                if name in data:
                    raise ValueError(f"give '{name}' or its alias '{alias}', not both")
                data[name] = data.pop(alias)
        return cls.prepare(data)

    @classmethod
    def prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Hook: adjust the raw values before validation (e.g. split credentials out of a
        URL). ``data`` holds what the sources or the mapping gave, under field names."""
        return data

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics_switch(cls, value: Any) -> Any:
        if value is None or value is True:
            return {}
        if value is False:
            return {"enabled": False}
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if not settings_cls.model_config.get("env_prefix"):
            return (init_settings,)
        lower: tuple[PydanticBaseSettingsSource, ...] = (
            env_settings,
            _KnownDotEnvSource(settings_cls),
            _StackOutputsSource(settings_cls),
        )
        groups = getattr(settings_cls, "key_groups", ())
        if groups:
            lower = tuple(_GroupedSource(settings_cls, source, groups) for source in lower)
        return (init_settings, *lower)

    # -- building it from what a caller passed ------------------------------------------------

    @classmethod
    def from_config(cls, config: Any = None) -> Self:
        """The validated settings for an adapter's ``config`` argument.

        ``None``: read the sources (environment, ``.env``, outputs, defaults). An instance of
        this model: used as it is. A mapping: a complete explicit config, validated strictly
        (Python types: ``"5"`` is no int), with the defaults for the rest and neither the
        environment nor the outputs file. A string: ``{"url": string}``. Anything else, or
        another adapter's settings, raises :class:`StorageDataError`.
        """
        if config is None:
            return cls()
        if isinstance(config, cls):
            return config
        if isinstance(config, AdapterSettings):
            raise StorageDataError(
                f"{cls.__name__} expected, got {type(config).__name__} (another adapter's settings)"
            )
        if isinstance(config, str) and "url" in cls.model_fields:
            config = {"url": config}
        if not isinstance(config, Mapping):
            raise StorageDataError(
                f"An adapter config must be a mapping, a {cls.__name__} or a URL, not "
                f"{type(config).__name__}"
            )
        # Validate as BaseModel.__init__ does, without BaseSettings.__init__ and its sources
        # (model_validate would call that custom __init__, and lose strict mode with it).
        settings = cls.__new__(cls)
        try:
            cls.__pydantic_validator__.validate_python(
                dict(config), strict=True, self_instance=settings
            )
        except ValidationError as exc:
            raise _config_error(cls, exc, sources=False) from None
        return settings

    # -- what the core needs from any model -------------------------------------------------

    @classmethod
    def stack_output_keys(cls) -> dict[str, str]:
        """Field name -> stack-outputs key of the fields the outputs file feeds."""
        return _output_keys(cls)

    @classmethod
    def admin_output_keys(cls) -> dict[str, str]:
        """Field name -> key of the fields the admin outputs file feeds."""
        return _output_keys(cls, admin=True)

    @classmethod
    def env_name(cls, field: str) -> str | None:
        """The environment variable of ``field`` (``None`` when the model reads none)."""
        prefix = cls.model_config.get("env_prefix") or ""
        return f"{prefix}{field}".upper() if prefix else None

    def secret_values(self) -> Iterator[str]:
        """Every credential this config holds, for redaction: each ``SecretStr`` value, or
        the password of one that is a URL (its host stays readable in messages)."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                yield from _secrets_of(value.get_secret_value())

    def __repr_args__(self) -> Any:
        # pydantic shows SecretStr as '**********'; URLs in plain str fields are masked here.
        for key, value in super().__repr_args__():
            yield key, mask_url(value) if isinstance(value, str) else value


def _secrets_of(text: str) -> Iterator[str]:
    if not text:
        return
    if "://" not in text:
        yield text
        return
    try:
        password = urlsplit(text).password
    except ValueError:
        password = None
    if password:
        yield password


# -- errors ------------------------------------------------------------------------------------


def _config_error(
    cls: type[AdapterSettings], exc: ValidationError, *, sources: bool
) -> StorageDataError:
    """One :class:`StorageDataError` naming each bad key and its rule, never its value."""
    problems = [_describe(cls, err, sources=sources) for err in exc.errors(include_input=False)]
    return StorageDataError(f"Invalid {cls.__name__}: {'; '.join(problems)}")


def _describe(cls: type[AdapterSettings], err: ErrorDetails, *, sources: bool) -> str:
    loc = [str(part) for part in err["loc"]]
    where = ".".join(loc)
    if err["type"] == "extra_forbidden":
        known = _known_keys(cls, loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key '{where}'{hint}; known keys: {', '.join(known)}"
    message = err["msg"].removeprefix("Value error, ")
    if not where:  # a rule over several keys (a model validator): its message names them
        return message
    if sources and loc and loc[0] in cls.model_fields:
        origins = []
        env = cls.env_name(loc[0])
        if env:
            origins.append(env if len(loc) == 1 else f"{env}__{'__'.join(loc[1:]).upper()}")
        output = _output_keys(cls).get(loc[0])
        if output:
            path, _ = stack_outputs_path()
            origins.append(f"stack output '{output}' in {path}")
        admin = _output_keys(cls, admin=True).get(loc[0])
        if admin:
            path, _ = admin_outputs_path()
            origins.append(f"admin output '{admin}' in {path}")
        if origins:
            message += f" [from an argument, {' or '.join(origins)}]"
    return f"{where}: {message}"


def _known_keys(cls: type[AdapterSettings], parent: list[str]) -> list[str]:
    model: Any = cls
    for part in parent:
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        model = getattr(field, "annotation", None)
    fields = getattr(model, "model_fields", {})
    return sorted(fields)
