"""The configuration table of a settings model, in Markdown, generated from the model itself.

Each package README carries its adapter's table between two markers::

    <!-- settings-table: mas_storage_redis.RedisSettings -->
    ...
    <!-- /settings-table -->

``scripts/settings-tables`` rewrites them from the models (:func:`render_settings_tables`), and
a test fails when a README's table differs from its model's, so the documentation cannot drift
from the code.
"""

from __future__ import annotations

import importlib
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from ._settings import AdapterSettings

__all__ = ["render_settings_tables", "settings_table"]

_NAMES = {str: "string", int: "int", float: "number", bool: "bool", dict: "mapping"}


def settings_table(model: type[AdapterSettings]) -> str:
    """One Markdown table row per key: type, default, environment variable, stack output and
    meaning (the field's description)."""
    outputs = model.stack_output_keys()
    rows = [
        "| key | type | default | env | stack output | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for name, field in model.model_fields.items():
        env = model.env_name(name)
        if env and _is_model(field.annotation):
            env += "__*"
        cells = [
            f"`{name}`",
            _type_text(field),
            _default_text(field),
            f"`{env}`" if env else "—",
            f"`{outputs[name]}`" if name in outputs else "—",
            (field.description or "").replace("|", "\\|").replace("\n", " "),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


_BLOCK = re.compile(
    r"(?P<open><!-- settings-table: (?P<model>[\w.]+) -->\n).*?(?P<close><!-- /settings-table -->)",
    re.DOTALL,
)


def render_settings_tables(text: str) -> str:
    """``text`` (a README) with every marked table regenerated from its model."""

    def table(match: re.Match[str]) -> str:
        module, _, name = match["model"].rpartition(".")
        model = getattr(importlib.import_module(module), name)
        if not (isinstance(model, type) and issubclass(model, AdapterSettings)):
            raise TypeError(f"{match['model']} is not an AdapterSettings model")
        return f"{match['open']}{settings_table(model)}{match['close']}"

    return _BLOCK.sub(table, text)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _type_text(field: FieldInfo) -> str:
    optional, text = _annotation_text(field.annotation)
    bounds = _bounds(field.metadata)
    text = f"{text} {bounds}" if bounds else text
    return f"{text}, or unset" if optional else text


def _annotation_text(annotation: Any) -> tuple[bool, str]:
    """``(optional, text)`` for a field's annotation."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        texts = [_annotation_text(a)[1] for a in args]
        return optional, " or ".join(texts)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        _, text = _annotation_text(base)
        bounds = _bounds(metadata)
        return False, f"{text} {bounds}" if bounds else text
    if origin is Literal:
        return False, "one of " + ", ".join(f"`{v}`" for v in get_args(annotation))
    if origin is tuple:
        return False, "list of " + _annotation_text(get_args(annotation)[0])[1] + "s"
    if origin is dict:
        return False, "mapping"
    if annotation is SecretStr:
        return False, "secret string"
    if _is_model(annotation):
        return False, "mapping or bool"
    return False, _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


#: pydantic's constraint metadata (annotated-types objects), by attribute, and their symbols.
_BOUNDS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))


def _bounds(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        if isinstance(item, FieldInfo):  # a Field(...) inside Annotated[...]: its constraints
            inner = _bounds(item.metadata)
            if inner:
                parts.append(inner)
            continue
        for attr, symbol in _BOUNDS:
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return ", ".join(parts)


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()  # a default is a constant of the code, not a secret
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "defaults"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if value == ():
        return "none"
    return f"`{value}`"
