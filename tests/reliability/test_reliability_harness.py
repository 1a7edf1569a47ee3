"""The fault harness's one excuse is exactly as wide as documented, and no wider.

A target that serves reads while it replays its log (Typesense) may read an acknowledged key as
missing while it catches up after a restart (``Target.serves_reads_while_replaying``). These
runs drive :func:`faults.run_outage` against an in-memory target whose "restart" hides every
acknowledged key, and check that such a miss is excused only inside the restart's window, only
after a restart, only for a target that declares it, and only if the key reads back afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable

import pytest
from faults import REPORTS, FaultTimes, NotYetVisible, OutageReport, Target, run_outage

from mas_storage import StorageConnectionError

pytestmark = pytest.mark.timeout(60)


class _Adapter:
    """Just enough of an adapter for the runner: ``connect`` and ``is_connected``."""

    is_connected = True

    async def connect(self) -> None:
        return None


class _Replaying:
    """An in-memory store whose restart refuses writes and hides every stored key meanwhile."""

    def __init__(self, *, caught_up: bool) -> None:
        self.stored: set[int] = set()
        self.hidden: set[int] = set()
        self.down = False
        self.caught_up = caught_up

    async def write(self, k: int) -> None:
        if self.down:
            raise StorageConnectionError("refused")
        self.stored.add(k)

    async def read(self, k: int) -> None:
        if k in self.hidden:
            raise NotYetVisible(f"k{k} read as None")

    async def census(self, keys: Iterable[int]) -> Counter[int]:
        return Counter(k for k in keys if k in self.stored)

    async def restart(self) -> FaultTimes:
        down = time.monotonic()
        self.down = True
        self.hidden = set(self.stored)
        await asyncio.sleep(0.3)
        self.down = False
        await asyncio.sleep(0.3)  # back, but still replaying: reads miss, writes succeed
        if self.caught_up:
            self.hidden.clear()
        return FaultTimes(down, time.monotonic())


async def _run(*, declares: bool, fault_name: str, caught_up: bool = True) -> OutageReport:
    store = _Replaying(caught_up=caught_up)
    handle = object()
    target = Target(
        "replaying",
        _Adapter(),  # type: ignore[arg-type]
        1.0,
        store.write,
        store.read,
        store.census,
        lambda: handle,
        serves_reads_while_replaying=declares,
    )
    rows = len(REPORTS)
    try:
        return await run_outage(
            target, store.restart, fault_name, warmup_writes=10, settle_calls=10
        )
    finally:
        del REPORTS[rows:]  # not a measured backend: keep it out of the results table


async def test_a_miss_while_replaying_after_a_restart_is_counted_and_must_catch_up() -> None:
    report = await _run(declares=True, fault_name="graceful restart")
    assert report.reads_behind_replay > 0
    assert report.unexpected_errors == []
    assert report.behind_replay_still_missing == []
    report.check()


async def test_a_key_that_never_reappears_fails_the_run() -> None:
    report = await _run(declares=True, fault_name="kill -9", caught_up=False)
    assert report.behind_replay_still_missing, "the hidden keys were not re-read"
    with pytest.raises(AssertionError, match=r"non-outage errors|never caught up"):
        report.check()


@pytest.mark.parametrize(
    ("declares", "fault_name"), [(False, "graceful restart"), (True, "SIGSTOP")]
)
async def test_no_excuse_without_a_declared_replay_after_a_restart(
    declares: bool, fault_name: str
) -> None:
    report = await _run(declares=declares, fault_name=fault_name)
    assert report.reads_behind_replay == 0
    assert any("NotYetVisible" in error for error in report.unexpected_errors)
    with pytest.raises(AssertionError, match="non-outage errors"):
        report.check()
