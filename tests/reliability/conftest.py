"""Fixtures of the reliability suite, and the measured table it prints at the end of a run.

* ``faults`` (session): :class:`faults.StackFaults` on the local stack (``local_stack`` of
  ``tests/conftest.py``; skipped when ``MAS_STACK_OUTPUTS`` names external backends). Its
  teardown thaws any process still frozen and restarts any service still down, whatever happened
  in the tests.
* ``qdrant_path``: a private directory for the embedded Qdrant (its lock admits one client per
  path, and other suites open the stack's own path).

Every fault run appends a row to :data:`faults.REPORTS`; at the end of the session the rows are
written to ``.mas/reliability/results.json`` and printed as a table (with or without ``-s``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults import REPORTS, StackFaults, table_lines, write_results

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / ".mas" / "reliability" / "results.json"


@pytest.fixture(scope="session")
def faults(local_stack: Any) -> Iterator[StackFaults]:
    """Kill, restart and freeze the local stack's services (by PID, lock held)."""
    control = StackFaults(local_stack)
    try:
        yield control
    finally:
        control.close()


@pytest.fixture
def qdrant_path(tmp_path: Path) -> Path:
    """A private embedded-Qdrant directory, removed with ``tmp_path``."""
    return tmp_path / "qdrant"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Write the fault runs of this session to ``RESULTS`` and print the measured table."""
    if not REPORTS:
        return
    write_results(RESULTS, REPORTS)
    terminalreporter.section("reliability: measured outages")
    for line in table_lines(REPORTS):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(rows written to {RESULTS.relative_to(ROOT)})")
