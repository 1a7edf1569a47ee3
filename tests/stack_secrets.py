"""The stack outputs' secrets, and the outputs dict that never shows them in its ``repr``.

Shared by ``tests/conftest.py`` (every suite's ``stack_outputs`` is a :class:`MaskedOutputs`,
so a failing test's report cannot print a password into the CI log) and the reliability
suite's secrets sweep (``tests/reliability/secretwatch.py``), which searches every log record,
exception and ``repr`` for :func:`stack_secrets`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from mas_storage import redact

__all__ = ["MaskedOutputs", "stack_secrets"]


def stack_secrets(outputs: Mapping[str, Any]) -> list[str]:
    """Every password and API key of the stack outputs (also URL-encoded, where it differs)."""
    found: list[str] = []
    for key, value in outputs.items():
        if not isinstance(value, str) or not value:
            continue
        if key.endswith(("_password", "_api_key", "_admin_api_key")):
            found.append(value)
        elif key.endswith("_url"):
            password = urlsplit(value).password
            if password:
                found.append(password)
    for secret in list(found):
        encoded = quote(secret, safe="")
        if encoded != secret:
            found.append(encoded)
    assert all(len(s) >= 8 for s in found), "a stack secret is too short to search for"
    return sorted(set(found))


class MaskedOutputs(dict[str, Any]):
    """The stack outputs, with every secret masked in their ``repr``.

    A failing test's report prints its arguments, ``stack_outputs`` among them: the plain dict
    would put the stack's passwords in the CI log.
    """

    def __repr__(self) -> str:
        return redact(super().__repr__(), stack_secrets(self))
