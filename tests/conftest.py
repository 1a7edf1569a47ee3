"""Session-wide fixtures: the backends every integration test talks to.

* ``MAS_STACK_OUTPUTS`` names a file: the tests run against those outputs (the lab, or a stack
  someone else started) and start nothing.
* Otherwise the local stack is brought up once for the session (``mas-devstack up`` is
  idempotent: services already running are reused) and, at the end, only the services this
  session started are stopped.

Tests under ``tests/integration`` and ``tests/reliability`` are marked ``integration``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stack_secrets import MaskedOutputs

from mas_storage import load_stack_outputs

ROOT = Path(__file__).resolve().parent.parent
_INTEGRATION_DIRS = ("integration", "reliability")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in _INTEGRATION_DIRS:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack_outputs() -> Iterator[dict[str, Any]]:
    """The stack outputs (``postgres_url``, ``redis_url``, ...) of the backends under test.

    A :class:`~stack_secrets.MaskedOutputs`: a failing test's report prints its arguments, and
    this dict's ``repr`` masks every password and API key.
    """
    named = os.environ.get("MAS_STACK_OUTPUTS")
    if named:
        yield MaskedOutputs(load_stack_outputs(Path(named)))
        return
    from mas_devstack import Stack

    stack = Stack()
    result = stack.up()
    previous = os.environ.get("MAS_STACK_OUTPUTS")
    os.environ["MAS_STACK_OUTPUTS"] = str(stack.outputs_path)
    try:
        yield MaskedOutputs(result.outputs)
    finally:
        if previous is None:
            os.environ.pop("MAS_STACK_OUTPUTS", None)
        stack.down(result.started)


@pytest.fixture(scope="session")
def local_stack(stack_outputs: dict[str, Any]) -> Any:
    """The local :class:`mas_devstack.Stack`, for tests that stop and start its processes.

    The outputs belong to it when they are exactly what it writes: on loopback, or on the
    simulated hosts of a stack file (``mas-devstack up --hosts``), whose addresses are not
    loopback but whose processes this machine runs. Skips (with the reason shown by ``-ra``)
    when the tests run against outputs of servers this machine does not run.
    """
    from mas_devstack import Stack

    stack = Stack()
    if os.environ.get("MAS_STACK_OUTPUTS") and not _is_local(stack, stack_outputs):
        pytest.skip("needs the local stack: MAS_STACK_OUTPUTS points at external backends")
    return stack


def _is_local(stack: Any, outputs: dict[str, Any]) -> bool:
    if not stack.layout.secrets_path.is_file():  # never started here: nothing to compare
        return False

    def given(values: dict[str, Any]) -> dict[str, Any]:  # a loaded file has no null entries
        return {k: v for k, v in values.items() if v is not None}

    return given(stack.outputs()) == given(dict(outputs))
