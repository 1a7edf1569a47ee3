"""Fixtures of the reliability suite, its secrets sweep, and what it prints at the end of a run.

* ``secret_sweep`` (session, autouse): every test of the suite runs under one
  :class:`secretwatch.SecretSweep`: every logger at DEBUG, every record scanned for the stack's
  passwords and API keys, and so are the exceptions the helpers collect, whatever escapes a
  test, every failure report, and the ``repr`` of every adapter created. A leak anywhere fails
  the run at the end (an error at the teardown of the last test, naming where each was seen).
* ``stack_outputs``: the outputs of ``tests/conftest.py``, with the secrets masked in their
  ``repr`` (a failing test's report prints its arguments).
* ``faults`` (session): :class:`faults.StackFaults` on this checkout's local stack; a fault on
  a backend the outputs name elsewhere (a server this run did not start: ``ownership`` of
  ``tests/conftest.py``) skips, naming the reason. Its teardown thaws any process still frozen
  and restarts any service still down, whatever happened in the tests.
* ``qdrant_server_faults`` (session): the same for the Qdrant server the session started from
  ``$MAS_QDRANT_SERVER_COMMAND``; skipped, with the reason, when it started none.
* ``qdrant_path``: a private directory for the embedded Qdrant (its lock admits one client per
  path, and other suites open the stack's own path).
* ``cluster_stack`` / ``cluster_of(backend)``: the local stack when it runs the cluster topology
  (``scripts/test-cluster``), and one backend's cluster (nodes, PIDs, outputs); the failover
  tests skip, with the reason, against anything else.

Every fault run appends a row to :data:`faults.REPORTS`; at the end of the session the rows are
written to ``.mas/reliability/results.json`` (or ``$MAS_RELIABILITY_RESULTS``) and printed as a
table (with or without ``-s``),
followed by the sweep's one-line summary (records scanned per logger family, exceptions, reprs).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from faults import REPORTS, StackFaults, table_lines, write_results
from ownership import Ownership
from secretwatch import SecretSweep, private_key_secrets, running_sweep, stack_secrets

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
#: Where the measured rows go (``$MAS_RELIABILITY_RESULTS``; scripts/test-hosts keeps its own).
RESULTS = Path(
    os.environ.get("MAS_RELIABILITY_RESULTS") or ROOT / ".mas" / "reliability" / "results.json"
)
SWEEP = pytest.StashKey[SecretSweep]()


@pytest.fixture(scope="session", autouse=True)
def secret_sweep(
    request: pytest.FixtureRequest, stack_outputs: dict[str, Any], stack_admin: dict[str, Any]
) -> Iterator[SecretSweep]:
    """The session's secrets sweep; it stops after the suite's last test (see
    :func:`pytest_runtest_teardown`), or here, and fails the run if anything leaked.

    Its secrets: every credential of the stack outputs and of the admin outputs, and, on the
    local stack, the TLS private keys (the CA's and each server's)."""
    from mas_devstack import Stack

    keys = private_key_secrets(Stack().private_key_files())
    sweep = SecretSweep(stack_secrets(stack_outputs) + stack_secrets(stack_admin) + keys)
    request.config.stash[SWEEP] = sweep
    sweep.start()
    try:
        yield sweep
    finally:
        sweep.stop()  # raises SecretLeak: an error at the teardown of the last test


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Name the running test in whatever the sweep finds from now on (and start the sweep
    again if the session ran tests of other directories in between)."""
    sweep = item.config.stash.get(SWEEP, None)
    if sweep is not None:
        if running_sweep() is None:
            sweep.start()
        sweep.where = item.nodeid


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Feed the sweep each phase's report: the adapters created, what escaped, what is shown."""
    report = yield
    sweep = running_sweep()  # None after the session fixture's teardown
    if sweep is not None:
        sweep.after_phase(item.nodeid, call, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """Stop the sweep after the suite's last test, even when the session goes on with tests of
    other directories: they must not run with every logger at DEBUG under this watch."""
    try:
        return (yield)
    finally:
        sweep = running_sweep()
        if sweep is not None and (nextitem is None or HERE not in nextitem.path.resolve().parents):
            sweep.stop()


@pytest.fixture(scope="session")
def faults(ownership: Ownership, stack_outputs: dict[str, Any]) -> Iterator[StackFaults]:
    """Kill, restart and freeze the local stack's services (by PID, lock held)."""
    from mas_devstack import Stack

    control = StackFaults(Stack(), lambda name: ownership.reason(name, stack_outputs))
    try:
        yield control
    finally:
        control.close()


@pytest.fixture(scope="session")
def qdrant_server_faults(
    ownership: Ownership, stack_outputs: dict[str, Any]
) -> Iterator[StackFaults]:
    """Kill, restart and freeze the Qdrant server this session started (by PID)."""
    reason = ownership.reason("qdrant", stack_outputs)
    if reason or ownership.qdrant_server is None:
        pytest.skip(reason or "no Qdrant server of this run")
    control = StackFaults(ownership.qdrant_server)
    try:
        yield control
    finally:
        control.close()


@pytest.fixture(scope="session")
def cluster_stack(local_stack: Any) -> Any:
    """The local stack, when it runs the cluster topology and the outputs under test are its
    own (``mas-devstack up --topology cluster``, as ``scripts/test-cluster`` runs it)."""
    if local_stack.topology != "cluster":
        pytest.skip("needs the cluster topology: scripts/test-cluster (up --topology cluster)")
    return local_stack


@pytest.fixture(scope="session")
def cluster_of(cluster_stack: Any) -> Callable[[str], Any]:
    """``cluster_of("redis")``: that backend's :class:`mas_devstack.ClusterBackend`; skips when
    the backend runs single-node in this cluster topology."""

    def get(backend: str) -> Any:
        found = cluster_stack.clusters.get(backend)
        if found is None:
            pytest.skip(f"{backend} runs single-node in this cluster topology (no cluster module)")
        return found

    return get


@pytest.fixture
def qdrant_path(tmp_path: Path) -> Path:
    """A private embedded-Qdrant directory, removed with ``tmp_path``."""
    return tmp_path / "qdrant"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Write the fault runs of this session to ``RESULTS`` and print the measured table, then
    the secrets sweep's summary line."""
    if REPORTS:
        write_results(RESULTS, REPORTS)
        terminalreporter.section("reliability: measured outages")
        for line in table_lines(REPORTS):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"(rows written to {RESULTS})")
    sweep = config.stash.get(SWEEP, None)
    if sweep is not None:
        terminalreporter.section("reliability: secrets sweep")
        terminalreporter.write_line(sweep.summary())
