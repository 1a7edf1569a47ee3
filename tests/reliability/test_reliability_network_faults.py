"""Network faults under load on the two-host stack: partition, blackhole, latency and loss.

The servers run in the namespaces of the stack file's hosts (``mas-devstack up --hosts
Pulumi.dev.yaml``: PostgreSQL and Redis on lab-a, Neo4j and Typesense on lab-b; Qdrant is
embedded in the client's process and has no network to fault). For each backend and fault the
load runner of :mod:`faults` asserts what the process-fault tests assert: every failure a typed
``StorageError`` (connection or timeout) within the configured timeout + 1 s, nothing hanging,
no new ``connect()`` and the same driver object, every acknowledged write found exactly once
after the caller's keyed retries, and every call made after the heal succeeding on the same
adapter. Latency and loss need not fail a call; they must slow the calls down (the median call
under the fault takes at least the added latency) and fail none untyped or unbounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from faults import NETWORK_BACKENDS, StackFaults
from netfaults import LATENCY_MS, NETWORK_FAULTS, NetworkFaults, network_fault_run

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def network_faults(faults: StackFaults) -> Iterator[NetworkFaults | None]:
    """The simulated hosts' faults; None when this checkout's stack runs on loopback."""
    if faults.stack.plan is None:
        yield None
        return
    control = NetworkFaults(faults)
    try:
        yield control
    finally:
        control.close()


@pytest.mark.parametrize("fault", list(NETWORK_FAULTS))
@pytest.mark.parametrize("backend", NETWORK_BACKENDS)
async def test_network_fault_under_load(
    backend: str,
    fault: str,
    faults: StackFaults,
    network_faults: NetworkFaults | None,
    stack_outputs: dict[str, Any],
) -> None:
    faults.require(backend)  # the outputs' server must be this checkout's stack's
    if network_faults is None:
        pytest.skip(
            "needs the two-host stack: mas-devstack up --hosts Pulumi.dev.yaml "
            "(scripts/test-hosts runs it)"
        )
    report = await network_fault_run(network_faults, stack_outputs, backend, fault)
    report.check(require_failures=fault != "latency")
    if fault == "latency":
        assert report.median_call_ms_during >= LATENCY_MS, (
            f"{backend}: the median call under {LATENCY_MS} ms of latency took "
            f"{report.median_call_ms_during} ms: the fault did not reach the calls"
        )
