"""PostgreSQL under faults: kill -9 and a graceful restart mid-load, and SIGSTOP/SIGCONT.

Every call during the outage raises StorageConnectionError or StorageTimeoutError within the
configured timeout plus one second; the same adapter (same pool, no new ``connect()``) serves
again once the server is back, because the pool checks each connection at checkout and drops
the dead ones; every acknowledged turn and fact is there afterwards, and the caller's retries
of the failed ones (``add_turn`` with an explicit ``turn_id``, ``add_fact`` with an
``idempotency_key``: both idempotent) add no second row.
"""

from __future__ import annotations

from typing import Any

import pytest
from faults import FAULTS, StackFaults, fault_run

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_postgres_recovers_on_the_same_adapter(
    fault: str, faults: StackFaults, stack_outputs: dict[str, Any]
) -> None:
    report = await fault_run(faults, stack_outputs, "postgres", fault)
    report.check()
