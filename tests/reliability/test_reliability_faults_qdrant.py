"""Qdrant under faults, in each mode the outputs name.

**Embedded** (``qdrant_path``): Qdrant Edge, a directory of collections (one client per
collection at a time, by a lock on its WAL) and no server process, so there is nothing to
SIGKILL or SIGSTOP on the stack side. Its "restart" is closing and reopening the collection,
which the adapter does with ``disconnect()`` and ``connect()`` on the same object (one connect,
by definition). Calls in between raise ``StorageConnectionError``. The crash that does apply is
the writer's own: a process writing points is killed with SIGKILL, and every point it was told
was stored must be there when the collection is opened again (Edge replays its WAL on load).
Both run on a private path.

**Server** (``qdrant_url``): kill -9, a graceful restart and SIGSTOP of the server's process
mid-load, as for every other backend (the same runner and checks). It needs the server's
process: a server the session started itself (``$MAS_QDRANT_SERVER_COMMAND``); against a
server this run did not start (the lab's), it skips with the reason.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from faults import FAULTS, HOLD, REPORTS, StackFaults, fault_run, open_target, reopen, run_outage
from qdrant_modes import require_mode

pytestmark = pytest.mark.timeout(300)
#: Acknowledged single-point stores before the SIGKILL (a second or so of writing here).
ACKED_BEFORE_KILL = 2000

#: A writer process: prints each point id once ``store()`` has returned (acknowledged).
WRITER = """
import asyncio, sys
from mas_storage_qdrant import QdrantAdapter

async def main(path):
    adapter = QdrantAdapter({"path": path, "collection_name": "test_rel", "vector_size": 8})
    await adapter.connect()
    k = 0
    while True:
        vector = [float((k * 7 + i) % 11) + 1.0 for i in range(8)]
        await adapter.store({"id": k + 1, "vector": vector, "content": f"episode {k}"})
        print(k, flush=True)
        k += 1

asyncio.run(main(sys.argv[1]))
"""


async def test_qdrant_recovers_on_the_same_adapter_after_a_reopen(
    stack_outputs: dict[str, Any], qdrant_path: Path
) -> None:
    require_mode(stack_outputs, "embedded")
    async with open_target("qdrant", stack_outputs, path=qdrant_path) as target:
        report = await run_outage(
            target, lambda: reopen(target.adapter, HOLD), "reopen of the path"
        )
    report.check(expect_connects=1)  # the reopen itself is the one connect()


async def test_qdrant_keeps_acknowledged_points_when_the_writer_is_killed(
    stack_outputs: dict[str, Any], qdrant_path: Path
) -> None:
    require_mode(stack_outputs, "embedded")
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        str(qdrant_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    acked: list[int] = []
    try:
        assert writer.stdout is not None and writer.stderr is not None
        while len(acked) < ACKED_BEFORE_KILL:
            line = await asyncio.wait_for(writer.stdout.readline(), 60)
            if not line:
                raise AssertionError(f"the writer exited: {(await writer.stderr.read())[-2000:]!r}")
            acked.append(int(line))
        down = time.monotonic()
        writer.send_signal(signal.SIGKILL)  # mid-load: the next store() is under way
        acked += [int(k) for k in (await writer.stdout.read()).split()]
        assert await writer.wait() == -signal.SIGKILL
    finally:
        if writer.returncode is None:
            writer.kill()
            await writer.wait()

    async with open_target("qdrant", stack_outputs, path=qdrant_path) as target:
        reopened = time.monotonic()
        await target.read(max(acked))
        served = time.monotonic()
        keys = range(max(acked) + 2)  # the acknowledged ones and the one cut short
        found = await target.census(keys)
    missing = [k for k in acked if not found[k]]
    REPORTS.append(
        {
            "backend": "qdrant",
            "fault": "kill -9 of the writer",
            "outage_s": round(reopened - down, 2),  # killed until the path is open again
            "first_success_after_s": round(served - reopened, 2),
            "writes_acked": len(acked),
            "writes_found": sum(found.values()),
            "retried": 0,
            "found_after_retry": sum(found.values()),
        }
    )
    assert acked == list(range(len(acked)))
    assert not missing, f"acknowledged points lost: {missing}"
    assert sum(found.values()) - len(acked) in (0, 1)  # at most the write cut short


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_qdrant_server_recovers_on_the_same_adapter(
    fault: str, qdrant_server_faults: StackFaults, stack_outputs: dict[str, Any]
) -> None:
    report = await fault_run(qdrant_server_faults, stack_outputs, "qdrant-server", fault)
    report.check()
