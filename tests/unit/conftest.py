"""Unit tests need no stack: none of them may see the admin outputs an integration session
of the same run names (``tests/conftest.py`` exports ``MAS_STACK_ADMIN`` for the session), or
a settings model resolving the owner's URL would read the live stack's credentials."""

from __future__ import annotations

import pytest

from mas_storage import ADMIN_OUTPUTS_ENV


@pytest.fixture(autouse=True)
def _no_session_admin_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ADMIN_OUTPUTS_ENV, raising=False)
