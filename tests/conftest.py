"""Session-wide fixtures: the backends every integration test talks to, and who owns them.

* ``MAS_STACK_OUTPUTS`` names a file: the tests run against those outputs (the lab, or a stack
  someone else started) and start nothing of the local stack.
* Otherwise the local stack is brought up once for the session (``mas-devstack up`` is
  idempotent: services already running are reused) and, at the end, only the services this
  session started are stopped.
* ``$MAS_QDRANT_SERVER_COMMAND`` (never set in CI): the session starts that Qdrant server
  itself, serving the outputs' ``qdrant_url``, owns it and stops it at the end
  (:class:`ownership.QdrantServer`).

**A suite tests what the outputs point at.** Qdrant tests run in server mode where the outputs
name a server (``qdrant_url``), embedded where they name a path (``qdrant_path``), both where
they name both (:mod:`qdrant_modes`, fixture ``qdrant_mode``). Tests that must own a server's
process (kill -9, SIGSTOP, restarts, network faults, the local stack's own tests) run only
against servers this run controls (:mod:`ownership`, fixtures ``ownership`` and ``local_stack``)
and skip with a one-line reason otherwise. At the end of a run that used the outputs, a section
says what they pointed at, what this run owned, and counts what ran, passed and skipped, with
every skip reason.

Tests under ``tests/integration`` and ``tests/reliability`` are marked ``integration``.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Imported here, at start-up, for every run: hypothesis's pytest plugin imports hypothesis in
# its terminal summary otherwise, and pytest's assertion rewriting then parses its modules at
# the end of a run that never used it, among the garbage a fault run leaves; CPython 3.11 can
# fail that parse with "SystemError: AST constructor recursion depth mismatch" (seen once, after
# the network faults), which crashed the whole run after every test had passed.
import hypothesis  # noqa: F401
import pytest
from ownership import Ownership, QdrantServer, ownership_of, qdrant_server_from_env
from qdrant_modes import MODES, Mode, require_mode
from stack_secrets import MaskedOutputs
from stack_tls import ca_file

from mas_storage import ADMIN_OUTPUTS_ENV, load_admin_outputs, load_stack_outputs

ROOT = Path(__file__).resolve().parent.parent
_INTEGRATION_DIRS = ("integration", "reliability")
_QDRANT_SERVER = pytest.StashKey[QdrantServer | None]()
_OUTPUTS = pytest.StashKey[tuple[str, dict[str, Any]]]()
_OWNERSHIP = pytest.StashKey[Ownership]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in _INTEGRATION_DIRS:
            item.add_marker(pytest.mark.integration)


@contextlib.contextmanager
def _owned_qdrant_server(outputs: dict[str, Any], config: pytest.Config) -> Iterator[None]:
    """Start the Qdrant server ``$MAS_QDRANT_SERVER_COMMAND`` names, for the whole session."""
    server = qdrant_server_from_env(outputs)
    config.stash[_QDRANT_SERVER] = server
    if server is None:
        yield
        return
    server.up()
    try:
        yield
    finally:
        server.down()


@pytest.fixture(scope="session")
def stack_outputs(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The stack outputs (``postgres_url``, ``redis_url``, ...) of the backends under test.

    A :class:`~stack_secrets.MaskedOutputs`: a failing test's report prints its arguments, and
    this dict's ``repr`` masks every password and API key.
    """
    named = os.environ.get("MAS_STACK_OUTPUTS")
    if named:
        outputs = MaskedOutputs(load_stack_outputs(Path(named)))
        request.config.stash[_OUTPUTS] = (f"{named} (MAS_STACK_OUTPUTS)", outputs)
        _trust_stack_ca(outputs)
        with _owned_qdrant_server(outputs, request.config):
            yield outputs
        return
    from mas_devstack import Stack

    stack = Stack()
    result = stack.up()
    previous = os.environ.get("MAS_STACK_OUTPUTS")
    os.environ["MAS_STACK_OUTPUTS"] = str(stack.outputs_path)
    os.environ.setdefault(ADMIN_OUTPUTS_ENV, str(stack.admin_outputs_path))
    outputs = MaskedOutputs(result.outputs)
    request.config.stash[_OUTPUTS] = (f"{stack.outputs_path} (the local stack)", outputs)
    try:
        _trust_stack_ca(outputs)
        with _owned_qdrant_server(outputs, request.config):
            yield outputs
    finally:
        if previous is None:
            os.environ.pop("MAS_STACK_OUTPUTS", None)
        stack.down(result.started)


def _trust_stack_ca(outputs: dict[str, Any]) -> None:
    """Trust the stack's CA in this process as a machine would: libpq's ``PGSSLROOTCERT`` and
    OpenSSL's ``SSL_CERT_FILE`` (Python's default verify paths). The suites' bare driver
    clients and their explicit adapter mappings (which, being complete configs, carry no
    ``tls_ca``) then verify the servers against it. The adapters built from the settings pass
    ``tls_ca`` themselves; the TLS tests (``tests/integration/test_tls.py``) remove both
    variables to prove that they do."""
    path = ca_file(outputs)
    if path:
        os.environ["PGSSLROOTCERT"] = path
        os.environ["SSL_CERT_FILE"] = path


@pytest.fixture(scope="session")
def stack_admin(stack_outputs: dict[str, Any]) -> dict[str, Any]:
    """The admin outputs (``postgres_owner_url``, ``redis_admin_url``,
    ``typesense_admin_api_key``): for the tests' own setup, cleanup and inspection, never for
    an adapter under test. ``$MAS_STACK_ADMIN``, else ``stack-admin.json`` beside the outputs
    file. Its ``repr`` masks every secret."""
    named = os.environ.get(ADMIN_OUTPUTS_ENV)
    if named:
        path = Path(named)
    else:
        path = Path(os.environ.get("MAS_STACK_OUTPUTS", ".mas/stack-outputs.json")).with_name(
            "stack-admin.json"
        )
        os.environ[ADMIN_OUTPUTS_ENV] = str(path)
    return MaskedOutputs(load_admin_outputs(path, required=True))


@pytest.fixture(scope="session")
def ownership(request: pytest.FixtureRequest, stack_outputs: dict[str, Any]) -> Ownership:
    """Which servers of the outputs this run may kill, freeze and restart (see
    :mod:`ownership`)."""
    from mas_devstack import Stack

    found = ownership_of(stack_outputs, Stack(), request.config.stash.get(_QDRANT_SERVER, None))
    request.config.stash[_OWNERSHIP] = found
    return found


@pytest.fixture(scope="session")
def local_stack(ownership: Ownership) -> Any:
    """The local :class:`mas_devstack.Stack`, for tests that stop and start its processes.

    The outputs belong to it when its backends' keys are exactly what it writes: on loopback,
    or on the simulated hosts of a stack file (``mas-devstack up --hosts``), whose addresses are
    not loopback but whose processes this machine runs. Skips (with the reason shown by ``-ra``)
    when none of the outputs' servers is the local stack's; a fault test also checks that its
    own backend is (``ownership.reason``).
    """
    from mas_devstack import Stack

    if ownership.local_stack_reason:
        pytest.skip(ownership.local_stack_reason)
    return Stack()


@pytest.fixture(params=MODES)
def qdrant_mode(request: pytest.FixtureRequest, stack_outputs: dict[str, Any]) -> Mode:
    """Each Qdrant mode the outputs name (``[embedded]``, ``[server]``); the others skip."""
    mode: Mode = request.param
    require_mode(stack_outputs, mode)
    return mode


# -- what the run tested: printed at the end ----------------------------------------------------

_KEYS = {
    "postgres": "postgres_url",
    "redis": "redis_url",
    "neo4j": "neo4j_url",
    "typesense": "typesense_url",
}


def _where(outputs: dict[str, Any], ownership: Ownership) -> list[str]:
    """One line per backend: where the outputs point (no credential), and who started it."""

    def owner(backend: str) -> str:
        return (
            "  (this run's: it may stop it)"
            if ownership.owns(backend)
            else "  (not started by this run)"
        )

    lines = []
    for backend, key in _KEYS.items():
        url = outputs.get(key)
        if url:
            # host:port, or several (a primary and its standby); never the credentials
            where = urlsplit(str(url)).netloc.rpartition("@")[2]
            lines.append(f"  {backend:<10} {where}{owner(backend)}")
        else:
            lines.append(f"  {backend:<10} not in the outputs")
    qdrant = []
    if outputs.get("qdrant_url"):
        qdrant.append(f"server {outputs['qdrant_url']}{owner('qdrant')}")
    if outputs.get("qdrant_path"):
        qdrant.append(f"embedded {outputs['qdrant_path']}")
    lines.append(f"  {'qdrant':<10} {'; '.join(qdrant) or 'not in the outputs'}")
    return lines


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """After a run that used the stack outputs: what they pointed at, and the counts."""
    described = config.stash.get(_OUTPUTS, None)
    if described is None:
        return
    source, outputs = described
    stats = terminalreporter.stats
    reports = [r for r in stats.get("passed", []) if getattr(r, "when", "call") == "call"]
    passed = len(reports)
    failed = len([r for r in stats.get("failed", []) if getattr(r, "when", "") == "call"])
    errors = len(stats.get("error", []))
    skipped = stats.get("skipped", [])
    write = terminalreporter.write_line
    terminalreporter.section("stack outputs: what this run tested")
    write(f"outputs: {source}")
    found = config.stash.get(_OWNERSHIP, None)
    if found is None:
        from mas_devstack import Stack

        found = ownership_of(outputs, Stack(), config.stash.get(_QDRANT_SERVER, None))
    for line in _where(outputs, found):
        write(line)
    write(
        f"tests: {passed + failed} ran ({passed} passed, {failed} failed), {len(skipped)} "
        f"skipped, {errors} errors"
    )
    reasons = Counter(_skip_reason(r) for r in skipped)
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        write(f"  skipped {count:>4} x {reason}")
