"""Typesense under faults: kill -9 and a graceful restart mid-load, and SIGSTOP/SIGCONT.

The adapter's one httpx client has a timeout per request and retries refused connections, so
calls during the outage fail fast and the same client serves again after the restart. Documents
are upserted by id: the caller's retries replace, never add, and the census (an export of the
collection) finds every acknowledged document once; a full-text search then finds all of them
(the index, not only the document store, came back).
"""

from __future__ import annotations

from typing import Any

import pytest
from faults import FAULTS, StackFaults, fault_run

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_typesense_recovers_on_the_same_adapter(
    fault: str, faults: StackFaults, stack_outputs: dict[str, Any]
) -> None:
    report = await fault_run(faults, stack_outputs, "typesense", fault)
    report.check()
