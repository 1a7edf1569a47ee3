"""What Qdrant gives back of a payload: everything exactly, floats as its JSON parser reads them.

Qdrant (the server 1.19, and Qdrant Edge, the embedded engine) parses payload JSON with
serde_json built without ``float_roundtrip``, whose float parser is not correctly rounded: it
reads the digits as an integer, converts it to ``f64`` and multiplies or divides by a power of
ten from a table of ``f64`` (``de.rs``, ``f64_from_parts``), up to three roundings.
:func:`serde_json_float` computes exactly what it reads. Measured (issue #23):

* **a Qdrant 1.19.0 server parses a payload twice** on the way from an upsert to a read: of
  14,300 finite doubles (11,000 random bit patterns sent as plain JSON, 3,300 more through
  qdrant-client: random bit patterns, integers between 1e15 and 1e16 written ``N.0``, small and
  large ones), every one came back as ``serde_json_float(serde_json_float(x))``; about 72 % of
  the random ones bit for bit, the others 1 to 3 ulps off (the issue's example:
  ``5.3016454816300884e+23`` came back as ``5.301645481630088e+23``);
* **Qdrant Edge (qdrant-edge-py 0.9.0) parses it once**: of 5,500 doubles (5,000 random bit
  patterns, 500 integers between 1e15 and 1e16), every one came back as ``serde_json_float(x)``,
  72 % bit for bit, the others up to 2 ulps off.

:func:`same_payload` is the check the suites use: a float must be the float sent or what that
parser makes of it after at most ``parses`` parses (a value computed exactly, not a tolerance);
every other JSON value, and the types, must be equal.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["PARSES", "same_payload", "serde_json_float"]

#: serde_json's ``POW10``: the doubles nearest to 1e0 ... 1e308 (as Python reads the literals).
_POW10 = tuple(float(f"1e{i}") for i in range(309))


def serde_json_float(value: float) -> float:
    """The double serde_json's default parser reads from ``value``'s shortest decimal form.

    A copy of ``f64_from_parts`` without ``float_roundtrip``: the significand's digits (all of
    them, a trailing ``.0`` included, as Python and pydantic write the float) as a ``u64`` (at
    most 18 digits: it fits) converted to ``f64``, then one multiplication or
    division by ``POW10[|exponent|]``, or divisions by ``1e308`` first when the exponent is
    below -308. Python's ``*``, ``/`` and ``float(int)`` round as Rust's do (IEEE 754, to
    nearest, ties to even), so the result is the server's, bit for bit.
    """
    if value == 0.0 or not math.isfinite(value):
        return value
    mantissa, _, exp = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    exponent = (int(exp) if exp else 0) - len(fraction)
    result = float(int(whole + fraction))
    while abs(exponent) >= len(_POW10):  # only below 1e-308: above, the float would be inf
        result /= 1e308
        exponent += 308
    power = _POW10[abs(exponent)]
    result = result * power if exponent >= 0 else result / power
    return math.copysign(result, value)


#: How many times each mode's engine parses a payload between an upsert and a read.
PARSES = {"embedded": 1, "server": 2}


def _same_float(held: float, given: float, parses: int) -> bool:
    value = given
    for _ in range(parses + 1):
        if held == value:
            return True
        value = serde_json_float(value)
    return False


def same_payload(held: Any, given: Any, *, parses: int) -> bool:
    """``held == given`` with the types equal too, except that a float may be what serde_json's
    default parser makes of it after at most ``parses`` parses (``PARSES[mode]``; 0: exactly)."""
    if type(given) is float and type(held) is float:
        return _same_float(held, given, parses)
    if isinstance(given, dict) and isinstance(held, dict):
        return held.keys() == given.keys() and all(
            same_payload(held[k], given[k], parses=parses) for k in given
        )
    if isinstance(given, list) and isinstance(held, list):
        return len(held) == len(given) and all(
            same_payload(h, g, parses=parses) for h, g in zip(held, given, strict=True)
        )
    return type(held) is type(given) and held == given
