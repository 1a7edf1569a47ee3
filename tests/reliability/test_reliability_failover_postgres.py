"""PostgreSQL primary and hot standby under faults (the cluster topology, issue 17).

* **Failover.** kill -9 of the primary mid-load; the harness plays the failover manager (as
  Patroni would, after its detection time ``HOLD``): ``pg_ctl promote`` on the standby. The
  same adapter, with no new ``connect()``, writes to the promoted standby (libpq's
  ``target_session_attrs=read-write`` over the multi-host URL finds it), and every
  acknowledged write is on it: synchronous replication (``remote_apply``) acknowledged none
  that the standby did not have. With ``read_from="prefer-standby"`` the reads go to the
  standby all along: they keep succeeding while the primary is dead, and (``remote_apply``)
  every read finds the write acknowledged before it.
* **Failover after a network cut** (on simulated hosts only: ``scripts/test-cluster --hosts``;
  it skips on loopback). The primary's host is cut off mid-load (its link down, the primary
  running on, unreachable); after the same detection time the harness fences the old primary
  (kill -9, as Patroni's watchdog would: a primary left running would take writes again once
  its host is back, a second primary) and promotes the standby on the other host, then
  reconnects the host. Synchronous replication means the cut primary could acknowledge nothing
  its standby did not have: 0 acknowledged writes lost.
* **Read-your-writes on the standby.** With ``remote_apply`` a turn acknowledged by the
  primary is already applied on the standby: a ``read_from="prefer-standby"`` read issued
  after the acknowledgement finds it, every time (with ``on`` it is flushed there, not yet
  applied, and such reads miss some).
* **A dead standby.** kill -9 of the standby mid-load: a synchronous primary holds every
  commit until a standby confirms it, so writes end by the adapter's ``query_timeout`` with a
  ``StorageTimeoutError`` (nothing hangs), reads go on; once the standby is back, the held
  commits complete and writes resume; the caller's keyed retries find each key once.

After each run the pair is healed as an operator would: the old node is cloned again from the
current primary and made its synchronous standby (``mas-devstack``'s cluster start). The roles
stay swapped after a failover, as on a real cluster; the URL names both nodes.
Skipped, with the reason, unless the outputs are the cluster topology's this machine runs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import psycopg
import pytest
from faults import HOLD, REPORTS, FaultTimes, StackFaults, open_target, run_outage
from netfaults import HostCut

from mas_storage import StorageTimeoutError
from mas_storage_postgres import PostgresAdapter

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def pg_cluster(cluster_of: Callable[[str], Any], faults: StackFaults) -> Iterator[Any]:
    """The PostgreSQL pair; healthy before the test (primary, standby streaming, sync), and
    healed after it whatever happened."""
    cluster = cluster_of("postgres")
    faults.stack.start("postgres")
    yield cluster
    faults.stack.start("postgres")  # rejoin: clone the old primary, sync again
    for name in cluster.pids():
        faults.revived(name)


def _sync_state(cluster: Any) -> tuple[str, str, str] | None:
    """(primary, standby, sync_state) as the primary reports its standby."""
    primary, standby = cluster.primary, cluster.standby
    with psycopg.connect(**primary._admin(5)) as conn:
        row = conn.execute(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s "
            "AND state = 'streaming'",
            (standby.name,),
        ).fetchone()
    return (primary.name, standby.name, row[0]) if row else None


class WriteLog:
    """Wraps a target's ``write`` to time the acknowledged writes (the outage as a writer
    sees it: from the kill to the first write that started after it and was acknowledged)."""

    def __init__(self, write: Callable[[int], Awaitable[Any]]) -> None:
        self._write = write
        self.acked: list[tuple[float, float]] = []

    async def __call__(self, k: int) -> Any:
        started = time.monotonic()
        result = await self._write(k)
        self.acked.append((started, time.monotonic()))
        return result

    def outage_from(self, moment: float) -> float | None:
        later = [ended for started, ended in self.acked if started >= moment]
        return round(min(later) - moment, 2) if later else None


@pytest.mark.parametrize("read_from", ["primary", "prefer-standby"])
@pytest.mark.parametrize("cause", ["kill", "cut"])
async def test_postgres_fails_over_to_the_promoted_standby(
    cause: str,
    read_from: str,
    pg_cluster: Any,
    faults: StackFaults,
    stack_outputs: dict[str, Any],
) -> None:
    old, new = pg_cluster.primary, pg_cluster.standby
    cut = HostCut(faults, old.host) if cause == "cut" else None  # skips on loopback
    assert cut is None or cut.host != HostCut(faults, new.host).host, "primary, standby: 1 host"
    assert _sync_state(pg_cluster) == (old.name, new.name, "sync")
    promote_s: list[float] = []
    report_kill_time: list[float] = []

    async def failover() -> FaultTimes:
        if cut is None:
            down = await faults.kill_only(old.name)
        else:
            down = await cut.cut()
        report_kill_time.append(down)
        await asyncio.sleep(max(0.0, down + HOLD - time.monotonic()))  # detection
        if cut is not None:  # fence the old primary before anything can reach it again
            await faults.kill_only(old.name)
        promote_s.append(await faults.call(pg_cluster.promote, new.name))
        if cut is not None:
            await cut.heal()
        return FaultTimes(down, time.monotonic())

    what = "kill -9 primary" if cut is None else "primary's host cut off, fenced"
    fault = f"failover: {what}, promote (reads: {read_from})"
    async with faults.locked(), open_target("postgres", stack_outputs, read_from=read_from) as t:
        writes = WriteLog(t.write)
        t.write = writes
        try:
            report = await run_outage(t, failover, fault)
        finally:
            if cut is not None:
                await cut.heal()
        # The same adapter's pools now reach the promoted node, for writes and reads.
        backend = (await t.adapter.get_metrics())["backend_specific"]
        assert backend["server"] == new.address
        if read_from == "prefer-standby":
            assert backend["read_server"] == new.address  # no standby left: the primary
    killed = report_kill_time[0]
    REPORTS[-1]["notes"] = [
        f"promote (pg_ctl promote -w) {promote_s[0]:.2f} s",
        f"writes: first acknowledged write {writes.outage_from(killed)} s after the {cause}",
    ]
    report.check()
    assert pg_cluster.primary_name == new.name


async def test_postgres_writes_wait_for_a_dead_standby(
    pg_cluster: Any, faults: StackFaults, stack_outputs: dict[str, Any]
) -> None:
    primary, standby = pg_cluster.primary, pg_cluster.standby
    assert _sync_state(pg_cluster) == (primary.name, standby.name, "sync")

    async def standby_down() -> FaultTimes:
        down = await faults.kill_only(standby.name)
        await asyncio.sleep(max(0.0, down + HOLD - time.monotonic()))
        await faults.call(faults.stack.start, "postgres")  # back, streaming, sync again
        faults.revived(standby.name)
        return FaultTimes(down, time.monotonic())

    async with faults.locked(), open_target("postgres", stack_outputs) as target:
        load_errors: list[tuple[str, BaseException]] = []

        def logged(kind: str, call: Callable[[int], Awaitable[Any]]) -> Callable[[int], Any]:
            async def run(k: int) -> Any:
                try:
                    return await call(k)
                except Exception as exc:
                    load_errors.append((kind, exc))
                    raise

            return run

        target.write, target.read = logged("write", target.write), logged("read", target.read)
        report = await run_outage(target, standby_down, "standby kill -9 (synchronous)")
    report.check()
    # Only writes waited, each ended by query_timeout as a StorageTimeoutError; reads went on.
    assert load_errors
    assert {(kind, type(exc)) for kind, exc in load_errors} == {("write", StorageTimeoutError)}
    assert _sync_state(pg_cluster) == (primary.name, standby.name, "sync")


async def test_a_standby_read_sees_every_acknowledged_write(
    pg_cluster: Any, stack_outputs: dict[str, Any]
) -> None:
    primary, standby = pg_cluster.primary, pg_cluster.standby
    url = stack_outputs["postgres_url"]
    session = f"test-rel-pg-ryw-{uuid.uuid4().hex[:10]}"
    config = {"url": url, "read_from": "prefer-standby", "pool_size": 2, "min_size": 1}
    try:
        async with PostgresAdapter(config) as adapter:
            backend = (await adapter.get_metrics())["backend_specific"]
            assert (backend["server"], backend["read_server"]) == (
                primary.address,
                standby.address,
            )
            missed = []
            for k in range(300):
                await adapter.add_turn(session, f"turn {k}", turn_id=k)
                rows = await adapter.search({"session_id": session, "turn_id": k})
                if [r["content"] for r in rows] != [f"turn {k}"]:
                    missed.append(k)
            assert missed == [], f"{len(missed)} of 300 standby reads missed the write just made"
            assert await adapter.count(session) == 300  # on the standby too
    finally:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("DELETE FROM active_context WHERE session_id = %s", (session,))


async def test_the_replication_role_replicates_and_nothing_else(
    pg_cluster: Any, stack_admin: dict[str, Any], stack_outputs: dict[str, Any]
) -> None:
    """``mas_replicator`` streams WAL (a replication connection answers IDENTIFY_SYSTEM with
    the cluster's identifier) and reaches no database (pg_hba.conf admits it to
    ``replication`` only); the adapters' outputs do not hold it."""
    url = stack_admin["postgres_replication_url"]
    assert "mas_replicator" not in str(dict(stack_outputs))
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, replication="true"
    ) as conn:
        cur = await conn.execute("IDENTIFY_SYSTEM")
        row = await cur.fetchone()
    assert row is not None  # the system identifier, as text (a walsender sends no types)
    assert int(row[0]) == pg_cluster.primary.system_identifier()
    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
        await psycopg.AsyncConnection.connect(url, dbname="mas_memory")
