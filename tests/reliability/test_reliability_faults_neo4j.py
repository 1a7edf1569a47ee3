"""Neo4j under faults: kill -9 and a graceful restart mid-load, and SIGSTOP/SIGCONT.

The driver's pool drops connections that broke, its managed transactions retry within
``max_retry_time``, and the adapter bounds every call by ``timeout`` on the client side (a frozen
server would otherwise hold a call forever). Entities are merged on ``id``: retries never add a
node. Neo4j restarts slowly (crash recovery, JVM start), so these tests are marked ``slow``.
"""

from __future__ import annotations

from typing import Any

import pytest
from faults import FAULTS, StackFaults, fault_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_neo4j_recovers_on_the_same_adapter(
    fault: str, faults: StackFaults, stack_outputs: dict[str, Any]
) -> None:
    report = await fault_run(faults, stack_outputs, "neo4j", fault)
    report.check()
