"""Field types the settings models share (the adapters' models and the metrics model).

* :data:`Integer`: an int where ``True``/``False`` are refused (Python counts ``True`` as 1,
  and ``pool_size=True`` is a mistake, not a pool of one).
* :data:`Seconds`: a positive, finite number of seconds (bools refused).
* :data:`NodeList`: ``host:port`` nodes or URLs, given as a JSON array or a comma-separated
  string, from arguments, the environment and the stack-outputs file alike.

Values from the environment and ``.env`` are strings, parsed as pydantic parses them (``"5"``
is 5, ``"true"`` is true). A mapping given in code is validated strictly (pydantic's strict
mode): ``"5"`` for an int is a mistake there, and is refused.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_settings import NoDecode

__all__ = ["Integer", "NodeList", "Seconds", "as_tuple"]


def _refuse_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a bool is not accepted here (Python counts True as 1)")
    return value


def as_tuple(value: Any) -> Any:
    """A list given for a tuple field becomes a tuple (mappings are validated strictly)."""
    return tuple(value) if isinstance(value, list) else value


def _split_nodes(value: Any) -> Any:
    """A JSON array or a comma-separated string (``"h1:6379,h2:6379"``) -> a tuple."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError("a node list starting with '[' must be a JSON array") from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    return as_tuple(value)


#: An int where ``True``/``False`` are refused.
Integer = Annotated[int, BeforeValidator(_refuse_bool)]
#: A positive, finite number of seconds (``True`` refused).
Seconds = Annotated[float, BeforeValidator(_refuse_bool), Field(gt=0, allow_inf_nan=False)]
#: Nodes (``host:port`` or URLs): a JSON array or a comma-separated string; ``()`` means none.
#: ``NoDecode`` stops pydantic-settings from requiring JSON in the environment.
NodeList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_nodes)]
