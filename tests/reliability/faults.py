"""Fault injection for the reliability suite: one workload runner for every backend.

* :class:`Target`: one backend under test, an adapter connected once plus the idempotent write,
  the read and the raw-driver census the runner needs. :func:`open_target` builds one per backend
  (small timeouts, unique ``test-rel-…`` names, everything removed afterwards).
* :class:`Workload`: a steady mixed load of writes and reads through the target's one adapter;
  every call is timed and its outcome kept.
* :class:`StackFaults`: kill -9, graceful restart and SIGSTOP/SIGCONT of the local stack's
  processes, by the PID the stack recorded (and that process's own children), always with the
  devstack lock held, so that no other session mistakes a frozen or killed service for a dead one
  and restarts it underneath the test. The same for a Qdrant server the session started
  (``ownership.QdrantServer``). A fault on a server this run did not start skips, with the
  reason (:meth:`StackFaults.require`).
* :func:`run_outage`: load, fault, recovery, the caller's retries and the census, summed up in an
  :class:`OutageReport` whose :meth:`~OutageReport.check` holds the assertions of issue #11.
  Every error the load collected is also handed to the session's secrets sweep
  (:mod:`secretwatch`): message, ``repr`` and chained causes must carry no password or API key.

Every report is kept in :data:`REPORTS`; the suite's ``conftest.py`` writes them to
``.mas/reliability/results.json`` and prints the table at the end of the run.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import itertools
import json
import os
import random
import signal
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from secretwatch import active_sweep

from mas_storage import StorageAdapter, StorageConnectionError, StorageTimeoutError

__all__ = [
    "BACKENDS",
    "FAULTS",
    "HOLD",
    "NETWORK_BACKENDS",
    "OUTAGE_ERRORS",
    "REPORTS",
    "SLACK",
    "TIMEOUT",
    "Call",
    "ConnectSpy",
    "FaultTimes",
    "NotYetVisible",
    "OutageReport",
    "StackFaults",
    "Target",
    "Workload",
    "fault_run",
    "open_target",
    "reopen",
    "run_outage",
    "table_lines",
    "typesense_fact",
    "write_results",
]

#: The per-call timeout configured in every adapter under test (seconds).
TIMEOUT = 2.0
#: A failed call must end within the configured timeout plus this (issue #11).
SLACK = 1.0
#: Errors an outage may raise; anything else (another StorageError included) fails the test.
OUTAGE_ERRORS = (StorageConnectionError, StorageTimeoutError)


class NotYetVisible(AssertionError):
    """A read found nothing for an acknowledged key (a wrong value is a plain AssertionError)."""


NETWORK_BACKENDS = ("postgres", "redis", "typesense", "neo4j")
#: ``qdrant`` is the embedded engine (a private path), ``qdrant-server`` the outputs' server.
BACKENDS = (*NETWORK_BACKENDS, "qdrant", "qdrant-server")
#: One row per fault run, in run order (written out by the suite's conftest).
REPORTS: list[dict[str, Any]] = []


# -- the backend under test -------------------------------------------------------------------


@dataclass
class Target:
    """One adapter under test and what the runner needs to drive and audit it.

    ``write(k)`` stores item ``k`` under an idempotent key (repeating it never adds a copy);
    ``read(k)`` reads item ``k`` back and raises ``AssertionError`` if it is wrong;
    ``census(keys)`` counts, through a raw driver (or a fresh client), how many copies of each
    key the backend holds; ``handle()`` returns the adapter's driver object (pool, client,
    driver), which must survive every fault unchanged; ``verify(keys)``, when given, checks
    through the adapter that the backend's indexes serve exactly ``keys`` after the run.
    """

    name: str
    adapter: StorageAdapter
    timeout: float
    write: Callable[[int], Awaitable[Any]]
    read: Callable[[int], Awaitable[Any]]
    census: Callable[[Iterable[int]], Awaitable[Counter[int]]]
    handle: Callable[[], object]
    verify: Callable[[set[int]], Awaitable[None]] | None = None
    fsync_each_write: Callable[[], Awaitable[None]] | None = None
    """For a kill -9: make the server fsync every write before it replies, for this run only.

    Redis's ``appendfsync everysec`` (the local stack's setting) may hold acknowledged writes
    in its own memory for up to 2 s while a background fsync is slow (``flushAppendOnlyFile``
    in ``aof.c``), so SIGKILL can take them away; nothing the adapter does changes that.
    ``appendfsync always`` writes and fsyncs before every reply: then "acknowledged" means
    "durable", and a write missing after the kill is one the adapter lost (docs/reliability.md).
    """
    serves_reads_while_replaying: bool = False
    """The server answers reads while it replays its log after a restart (Typesense).

    Typesense serves reads once at most ``healthy-read-lag`` (1000) writes wait in its batched
    indexer, and a document still queued reads as not found. So a :class:`NotYetVisible` read
    that *started* between the fault and the moment the stack saw the server caught up (an
    empty write queue, ``Typesense.probe_ready``) is counted as a read behind the replay, not as
    an error; each such key must then read correctly, and every read started after that moment
    is held to the full check. Nothing else is excused: a wrong value, an untyped error or a
    miss outside that window still fails the run.
    """


class ConnectSpy:
    """Counts ``connect()`` calls made on one adapter object (instance attribute shadowing)."""

    def __init__(self, adapter: StorageAdapter) -> None:
        self.count = 0
        self._adapter = adapter
        original = adapter.connect

        async def counting() -> None:
            self.count += 1
            await original()

        adapter.connect = counting  # type: ignore[method-assign]

    def restore(self) -> None:
        with contextlib.suppress(AttributeError):
            del self._adapter.connect


# -- the load ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One adapter call of the workload: what, on which key, when, and how it ended."""

    kind: str
    key: int
    started: float
    ended: float
    error: BaseException | None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class Workload:
    """A steady mixed load: ``workers`` tasks, each writing a new key then reading an old one.

    Keys are consecutive integers; a write that raised leaves its key "unacknowledged" (the
    backend may or may not have applied it), to be retried by the caller after the outage.
    Like a real caller, a worker pauses ``pause`` s between rounds and ``backoff`` s after a
    failed write (a refused connection fails in microseconds).

    ``read_lag``: reads pick among the keys acknowledged at least that many seconds ago (a
    replica that serves reads applies a write some time after it was acknowledged: a Typesense
    follower up to one Raft heartbeat, 0.5 s). 0: any acknowledged key.
    """

    def __init__(
        self,
        target: Target,
        *,
        workers: int = 4,
        pause: float = 0.02,
        backoff: float = 0.1,
        read_lag: float = 0.0,
    ) -> None:
        self.target = target
        self.workers = workers
        self.pause = pause
        self.backoff = backoff
        self.read_lag = read_lag
        self.calls: list[Call] = []
        self.acked: set[int] = set()
        self._acked_at: list[tuple[float, int]] = []  # (monotonic time, key), in ack order
        self.attempted: set[int] = set()
        self._keys = itertools.count()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._random = random.Random(11)

    async def _timed(self, kind: str, key: int, call: Callable[[int], Awaitable[Any]]) -> bool:
        started = time.monotonic()
        try:
            await call(key)
        except Exception as exc:  # every outcome is data; the report judges them
            self.calls.append(Call(kind, key, started, time.monotonic(), exc))
            return False
        self.calls.append(Call(kind, key, started, time.monotonic(), None))
        return True

    async def _worker(self) -> None:
        while not self._stop.is_set():
            key = next(self._keys)
            self.attempted.add(key)
            if await self._timed("write", key, self.target.write):
                self.acked.add(key)
                self._acked_at.append((time.monotonic(), key))
            else:
                await asyncio.sleep(self.backoff)
            old = self._readable()
            if old is not None:
                await self._timed("read", old, self.target.read)
            await asyncio.sleep(self.pause)

    def _readable(self) -> int | None:
        """A random key acknowledged at least ``read_lag`` s ago, None when there is none."""
        if not self.read_lag:
            return self._random.choice(tuple(self.acked)) if self.acked else None
        ready = bisect.bisect_right(self._acked_at, (time.monotonic() - self.read_lag, -1))
        return self._acked_at[self._random.randrange(ready)][1] if ready else None

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]

    async def stop(self) -> None:
        """Let every worker finish its current call (no call is cut short), then return."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def successes_since(self, moment: float) -> int:
        return sum(1 for c in self.calls if c.error is None and c.started >= moment)

    async def wait_for(self, condition: Callable[[], bool], within: float, what: str) -> None:
        """Poll ``condition`` until true; fail naming ``what`` after ``within`` seconds."""
        deadline = time.monotonic() + within
        while not condition():
            if any(t.done() for t in self._tasks):  # a worker died: surface its exception
                await asyncio.gather(*self._tasks)
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.target.name}: {what} within {within:.0f}s")
            await asyncio.sleep(0.05)


# -- the faults -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultTimes:
    """``down``: the service stopped serving; ``up``: it answers again (monotonic seconds)."""

    down: float
    up: float


class StackFaults:
    """Kill, restart and freeze the local stack's services, holding the devstack lock.

    ``Stack.up()`` (every test session's first step) restarts a service whose PID lives but
    does not answer; holding the stack's lock file for the whole fault makes other sessions wait
    instead of "repairing" a service this suite froze or killed. The lock is a file lock plus a
    per-thread re-entrant lock, so it is taken, used (``stop``/``start``) and released on one
    private thread.
    """

    def __init__(self, stack: Any, refusal: Callable[[str], str | None] = lambda _: None) -> None:
        self.stack = stack
        self._refusal = refusal
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="stack-faults")
        self._held: contextlib.AbstractContextManager[None] | None = None
        # What a test interrupted mid-fault (e.g. by pytest-timeout) may leave: see close().
        self._frozen: list[psutil.Process] = []
        self._down: set[str] = set()

    def require(self, name: str) -> None:
        """Skip the calling test unless this run may signal ``name``'s server (see
        :mod:`ownership`): the outputs must point at a server this run started."""
        reason = self._refusal(name)
        if reason:
            import pytest

            pytest.skip(reason)

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: fn(*args, **kwargs))

    def _acquire(self) -> None:
        held = self.stack._exclusive()  # the stack's own lock: up/down/start/stop wait for it
        held.__enter__()
        self._held = held

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.__exit__(None, None, None)

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Hold the devstack lock (other sessions' ``up``/``start``/``stop`` wait)."""
        await self._run(self._acquire)
        try:
            yield
        finally:
            await self._run(self._release)

    def processes(self, name: str) -> list[psutil.Process]:
        """The service's recorded process and its descendants (PostgreSQL's backends)."""
        pid = self.stack.pid(name)
        if pid is None:
            raise AssertionError(f"{name} is not running (no PID file): start the local stack")
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]

    async def kill(self, name: str, hold: float) -> FaultTimes:
        """SIGKILL the server (all its processes) mid-load, keep it down ``hold`` s, restart."""
        async with self.locked():
            try:
                down = await self.kill_only(name)
                await asyncio.sleep(max(0.0, down + hold - time.monotonic()))
            finally:
                await self._run(self.stack.start, name)
                self._down.discard(name)
            return FaultTimes(down, time.monotonic())

    async def kill_only(self, name: str) -> float:
        """SIGKILL the server or cluster node ``name`` (all its processes) and leave it down:
        bringing it back (a failover manager, a rejoin) is the caller's, then
        :meth:`revived`; :meth:`close` starts it again if nobody did. Returns the moment it
        was killed (monotonic seconds). Call it with the lock held (:meth:`locked`)."""
        procs = self.processes(name)
        self._down.add(name)
        down = time.monotonic()
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
        await self._run(psutil.wait_procs, procs, 15)
        await self._run(self.stack.stop, name, kill=True)  # PID file, stray group members
        return down

    def revived(self, name: str) -> None:
        """``name``, killed by :meth:`kill_only`, runs again (nothing to restart at close)."""
        self._down.discard(name)

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking stack call on the thread that holds the devstack lock: the lock is
        re-entrant for that thread only, so from any other one the call would wait for it."""
        return await self._run(fn, *args, **kwargs)

    async def restart(self, name: str, hold: float) -> FaultTimes:
        """Stop the server gracefully (its own stop signal), keep it down ``hold`` s, restart."""
        async with self.locked():
            self._down.add(name)
            down = time.monotonic()
            try:
                await self._run(self.stack.stop, name)
                await asyncio.sleep(max(0.0, down + hold - time.monotonic()))
            finally:
                await self._run(self.stack.start, name)
                self._down.discard(name)
            return FaultTimes(down, time.monotonic())

    async def freeze(self, name: str, hold: float) -> FaultTimes:
        """SIGSTOP the server (all its processes) for ``hold`` s; SIGCONT always follows."""
        async with self.locked():
            procs = self.processes(name)
            self._frozen = procs
            down = time.monotonic()
            try:
                for proc in procs:
                    proc.send_signal(signal.SIGSTOP)
                await asyncio.sleep(hold)
            finally:
                self._thaw()
            return FaultTimes(down, time.monotonic())

    def _thaw(self) -> None:
        procs, self._frozen = self._frozen, []
        for proc in reversed(procs):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Thaw whatever is still frozen and restart whatever is still down, then stop."""
        self._thaw()
        try:
            for name in sorted(self._down):
                self._thread.submit(self.stack.start, name).result()
            self._thread.submit(self._release).result()
        finally:
            self._thread.shutdown(wait=True)


async def reopen(adapter: StorageAdapter, hold: float) -> FaultTimes:
    """The embedded Qdrant's "restart": close the local path, wait ``hold`` s, open it again."""
    down = time.monotonic()
    try:
        await adapter.disconnect()
        await asyncio.sleep(hold)
    finally:
        await adapter.connect()
    return FaultTimes(down, time.monotonic())


# -- the run and its report -------------------------------------------------------------------


@dataclass
class OutageReport:
    """What one fault did to one adapter under load (one row of the measured table)."""

    backend: str
    fault: str
    timeout_s: float
    outage_s: float
    calls_total: int
    calls_failed: int
    error_types: dict[str, int]
    unexpected_errors: list[str]
    failures_before_fault: int
    max_failed_call_s: float
    first_success_after_s: float | None
    failed_after_up: int
    writes_acked: int
    writes_unacked: int
    writes_found: int
    acked_missing: list[int]
    duplicated: dict[int, int]
    retried: int
    found_after_retry: int
    missing_after_retry: list[int]
    duplicated_after_retry: dict[int, int]
    reads_behind_replay: int
    """Reads that found nothing while the server replayed its log (see Target)."""
    behind_replay_still_missing: list[int]
    """Keys of those reads that still did not read correctly after the run: must be empty."""
    connects: int
    same_handle: bool
    notes: list[str] = field(default_factory=list)
    median_call_ms_before: float = 0.0
    """Median duration of the calls that started before the fault, in ms."""
    median_call_ms_during: float = 0.0
    """Median duration of the calls that started while the fault lasted, in ms."""
    failed_by_kind: dict[str, int] = field(default_factory=dict)
    """Failed calls by kind (``write``, ``read``)."""
    served_during: dict[str, int] = field(default_factory=dict)
    """Calls by kind that started during the fault (``down`` to ``up``) and succeeded."""
    longest_gap_s: dict[str, float] = field(default_factory=dict)
    """By kind, the longest time without a successful call from the fault on (from the last
    success before it): what a caller saw of the outage, whatever ``up`` says."""

    def row(self) -> dict[str, Any]:
        return asdict(self)

    def check(self, *, expect_connects: int = 0, require_failures: bool = True) -> None:
        """The assertions of issue #11 for one fault run.

        ``require_failures=False`` for a fault that may slow calls down without failing any
        (latency and loss): then failures are allowed, each still typed and bounded.
        """
        where = f"{self.backend}/{self.fault}"
        assert not self.unexpected_errors, f"{where}: non-outage errors: {self.unexpected_errors}"
        assert self.failures_before_fault == 0, f"{where}: calls failed before the fault"
        if require_failures:
            assert self.calls_failed > 0, f"{where}: no call failed: the fault was not observed"
        assert self.max_failed_call_s <= self.timeout_s + SLACK, (
            f"{where}: a failed call took {self.max_failed_call_s:.2f}s "
            f"(timeout {self.timeout_s:g}s + {SLACK:g}s)"
        )
        assert self.first_success_after_s is not None, f"{where}: never served again"
        assert self.failed_after_up == 0, (
            f"{where}: {self.failed_after_up} calls made after the backend was back failed"
        )
        assert self.connects == expect_connects, f"{where}: {self.connects} connect() calls"
        assert self.same_handle, f"{where}: the adapter's driver object was replaced"
        assert not self.acked_missing, f"{where}: acknowledged writes lost: {self.acked_missing}"
        assert not self.duplicated, f"{where}: writes stored twice: {self.duplicated}"
        assert not self.missing_after_retry, f"{where}: retried writes missing"
        assert not self.duplicated_after_retry, (
            f"{where}: retried writes stored twice: {self.duplicated_after_retry}"
        )
        assert not self.behind_replay_still_missing, (
            f"{where}: reads behind the replay never caught up: {self.behind_replay_still_missing}"
        )


def _longest_gaps(calls: list[Call], down: float) -> dict[str, float]:
    """By kind: the longest interval between two successive successful calls' ends, from the
    last success before ``down`` on."""
    gaps: dict[str, float] = {}
    for kind in sorted({c.kind for c in calls}):
        ends = sorted(c.ended for c in calls if c.kind == kind and c.error is None)
        before = [e for e in ends if e < down]
        after = [e for e in ends if e >= down]
        marks = before[-1:] + after
        if len(marks) > 1:
            gaps[kind] = round(max(b - a for a, b in itertools.pairwise(marks)), 2)
    return gaps


def _median_ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1000, 1) if seconds else 0.0


def _is_outage_error(exc: BaseException) -> bool:
    return isinstance(exc, OUTAGE_ERRORS)


def _behind_replay(target: Target, call: Call, times: FaultTimes) -> bool:
    """A miss the server's documented catch-up explains (see ``Target``), nothing wider."""
    return (
        target.serves_reads_while_replaying
        and call.kind == "read"
        and isinstance(call.error, NotYetVisible)
        and times.down <= call.started < times.up
    )


async def _reads(target: Target, key: int) -> bool:
    """True when ``key`` reads back correctly now."""
    try:
        await target.read(key)
    except AssertionError:
        return False
    return True


async def run_outage(
    target: Target,
    fault: Callable[[], Awaitable[FaultTimes]],
    fault_name: str,
    *,
    warmup_writes: int = 40,
    settle_calls: int = 40,
    recovery_within: float = 120.0,
    read_lag: float = 0.0,
) -> OutageReport:
    """Run the load, inject ``fault`` mid-load, wait for recovery, retry, count; report.

    The caller's retry (every write that raised is repeated with its same key once the backend
    is back) is the "retried turns" of issue #11: the census afterwards must find every key
    exactly once.
    """
    spy = ConnectSpy(target.adapter)
    handle = target.handle()
    load = Workload(target, read_lag=read_lag)
    load.start()
    try:
        await load.wait_for(lambda: len(load.acked) >= warmup_writes, 60, "no warm-up")
        times = await fault()
        await load.wait_for(
            lambda: load.successes_since(times.up) >= settle_calls,
            recovery_within,
            "service did not resume on the same adapter",
        )
    finally:
        await load.stop()
        spy.restore()
    connects = spy.count
    same_handle = target.handle() is handle and target.adapter.is_connected

    failed = [c for c in load.calls if c.error is not None]
    sweep = active_sweep()
    for c in failed:
        if c.error is not None:
            sweep.exception(c.error, f"{target.name}/{fault_name} {c.kind}")
    restarted = fault_name in RESTARTS
    behind = [c for c in failed if restarted and _behind_replay(target, c, times)]
    unexpected = [
        f"{c.kind} {type(c.error).__name__}: {c.error}"[:300]
        for c in failed
        if c.error is not None and not _is_outage_error(c.error) and c not in behind
    ]
    behind_keys = sorted({c.key for c in behind})
    still_missing = [key for key in behind_keys if not await _reads(target, key)]
    successes_after = [c.ended for c in load.calls if c.error is None and c.ended >= times.up]
    before = [c.seconds for c in load.calls if c.started < times.down]
    during = [c.seconds for c in load.calls if times.down <= c.started < times.up]
    unacked = sorted(load.attempted - load.acked)

    found = await target.census(sorted(load.attempted))
    for key in unacked:  # the caller's retry of every write with an unknown outcome
        await target.write(key)
    after = await target.census(sorted(load.attempted))
    if target.verify is not None:
        await target.verify(set(load.attempted))

    report = OutageReport(
        backend=target.name,
        fault=fault_name,
        timeout_s=target.timeout,
        outage_s=round(times.up - times.down, 2),
        calls_total=len(load.calls),
        calls_failed=len(failed),
        error_types=dict(Counter(type(c.error).__name__ for c in failed)),
        unexpected_errors=unexpected,
        failures_before_fault=sum(1 for c in failed if c.ended < times.down),
        max_failed_call_s=round(max((c.seconds for c in failed), default=0.0), 2),
        first_success_after_s=(
            round(min(successes_after) - times.up, 2) if successes_after else None
        ),
        failed_after_up=sum(1 for c in failed if c.started >= times.up),
        writes_acked=len(load.acked),
        writes_unacked=len(unacked),
        writes_found=sum(1 for k in load.attempted if found[k]),
        acked_missing=sorted(k for k in load.acked if not found[k]),
        duplicated={k: n for k, n in found.items() if n > 1},
        retried=len(unacked),
        found_after_retry=sum(1 for k in load.attempted if after[k]),
        missing_after_retry=sorted(k for k in load.attempted if not after[k]),
        duplicated_after_retry={k: n for k, n in after.items() if n > 1},
        reads_behind_replay=len(behind),
        behind_replay_still_missing=still_missing,
        connects=connects,
        same_handle=same_handle,
        median_call_ms_before=_median_ms(before),
        median_call_ms_during=_median_ms(during),
        failed_by_kind=dict(Counter(c.kind for c in failed)),
        served_during=dict(
            Counter(
                c.kind for c in load.calls if c.error is None and times.down <= c.started < times.up
            )
        ),
        longest_gap_s=_longest_gaps(load.calls, times.down),
    )
    REPORTS.append(report.row())
    return report


#: How long a fault keeps a service down or frozen: long enough for calls to fail entirely
#: inside it (a call may take up to the timeout), short for the others sharing the stack.
HOLD = TIMEOUT + SLACK + 0.5
#: Fault kinds of :class:`StackFaults`, with the name each has in the measured table.
FAULTS = {"kill": "kill -9", "restart": "graceful restart", "freeze": "SIGSTOP"}
#: The faults after which the server replays its log (see ``Target.serves_reads_while_replaying``).
RESTARTS = frozenset({FAULTS["kill"], FAULTS["restart"]})


async def fault_run(
    faults: StackFaults, outputs: dict[str, Any], backend: str, fault: str
) -> OutageReport:
    """One fault of kind ``fault`` (see :data:`FAULTS`) on ``backend`` under load: the report.

    ``backend`` is a target of :func:`open_target`; the process signalled is its server's
    (``qdrant-server``: the Qdrant server). Skips when this run did not start that server.
    """
    service = backend.removesuffix("-server")
    faults.require(service)
    inject = {"kill": faults.kill, "restart": faults.restart, "freeze": faults.freeze}[fault]
    # The lock for the whole run: no other session stops or restarts a service under the load.
    async with faults.locked(), open_target(backend, outputs) as target:
        if fault == "kill" and target.fsync_each_write is not None:
            await target.fsync_each_write()
        return await run_outage(target, lambda: inject(service, HOLD), FAULTS[fault])


# -- the five targets -------------------------------------------------------------------------


def _run_id(prefix: str) -> str:
    return f"test-rel-{prefix}-{uuid.uuid4().hex[:10]}"


@contextlib.asynccontextmanager
async def open_target(
    name: str, outputs: dict[str, Any], *, path: Path | None = None, **overrides: Any
) -> AsyncIterator[Target]:
    """A connected :class:`Target` for backend ``name``; its data is removed afterwards.

    ``overrides`` go into the adapter's config (e.g. a small pool for the concurrency tests);
    ``path`` is the embedded Qdrant's directory (``qdrant``); ``qdrant-server`` is the outputs'
    Qdrant server.
    """
    openers = {
        "postgres": _postgres,
        "redis": _redis,
        "typesense": _typesense,
        "neo4j": _neo4j,
        "qdrant": _qdrant,
        "qdrant-server": functools.partial(_qdrant, server=True),
    }
    async with openers[name](outputs, path, overrides) as target:
        yield target


@contextlib.asynccontextmanager
async def _postgres(
    outputs: dict[str, Any], _: Path | None, overrides: dict[str, Any]
) -> AsyncIterator[Target]:
    import psycopg

    from mas_storage_postgres import PostgresAdapter

    url = outputs["postgres_url"]
    session = _run_id("pg")
    config = {
        "url": url,
        "timeout": TIMEOUT,
        "query_timeout": TIMEOUT,
        "pool_size": 4,
        "min_size": 1,
        **overrides,
    }
    adapter = PostgresAdapter(config)

    # Even keys are turns (L1), odd keys facts (L2): both tables under the same outage. Each
    # write is replay-safe: an explicit turn_id, or the fact's idempotency_key (migration 0002).
    async def write(k: int) -> None:
        if k % 2:
            await adapter.add_fact(session, f"rel-{k}", f"fact {k}", idempotency_key=f"k{k}")
            return
        got = await adapter.add_turn(session, f"turn {k}", {"k": k}, turn_id=k)
        assert got == k, f"add_turn returned {got} for turn {k}"

    async def read(k: int) -> None:
        if k % 2:
            facts = await adapter.get_facts(session, f"rel-{k}")
            assert [f["content"] for f in facts] == [f"fact {k}"], f"fact {k} read as {facts}"
            return
        rows = await adapter.search({"session_id": session, "turn_id": k})
        assert [r["content"] for r in rows] == [f"turn {k}"], f"turn {k} read back as {rows}"

    async def census(keys: Iterable[int]) -> Counter[int]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT turn_id, count(*) FROM active_context WHERE session_id = %s "
                "GROUP BY turn_id UNION ALL "
                "SELECT substr(idempotency_key, 2)::int, count(*) FROM working_memory "
                "WHERE session_id = %s GROUP BY idempotency_key",
                (session, session),
            )
            return Counter({int(k): int(n) for k, n in await cur.fetchall()})

    await adapter.connect()
    try:
        yield Target(
            "postgres", adapter, config["timeout"], write, read, census, lambda: adapter.pool
        )
    finally:
        await adapter.disconnect()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for table in ("active_context", "working_memory"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE session_id = %s",  # noqa: S608 (fixed names)
                    (session,),
                )


@contextlib.asynccontextmanager
async def _redis(
    outputs: dict[str, Any], _: Path | None, overrides: dict[str, Any]
) -> AsyncIterator[Target]:
    from stack_tls import raw_redis

    from mas_storage import load_admin_outputs
    from mas_storage_redis import RedisAdapter, session_key

    url = outputs["redis_url"]
    session = _run_id("redis")
    key = session_key(session)
    config = {
        "url": url,
        "socket_timeout": TIMEOUT,
        "window_size": 100_000,  # keep every turn: the census counts them all
        "ttl_seconds": 3600,
        **overrides,
    }
    adapter = RedisAdapter(config)
    write, read, census = turn_workload(adapter, session, lambda: raw_redis(url, outputs))

    async def configure(*args: str) -> Any:
        # CONFIG is the operator's (admin outputs): the adapter's ACL user may not send it.
        admin_url = str(load_admin_outputs().get("redis_admin_url") or url)
        raw = raw_redis(admin_url, outputs, decode_responses=True)
        try:
            return await raw.execute_command("CONFIG", *args)
        finally:
            await raw.aclose()

    policies: list[str] = []  # the setting to put back, once fsync_each_write changed it

    async def fsync_each_write() -> None:
        # Only the running process: a restart reads the stack's redis.conf (everysec) again.
        policies.append((await configure("GET", "appendfsync"))["appendfsync"])
        await configure("SET", "appendfsync", "always")

    await adapter.connect()
    try:
        yield Target(
            "redis",
            adapter,
            config["socket_timeout"],
            write,
            read,
            census,
            lambda: adapter.client,
            fsync_each_write=fsync_each_write,
        )
    finally:
        await adapter.disconnect()
        if policies:
            await configure("SET", "appendfsync", policies[0])
        raw = raw_redis(url, outputs)
        try:
            await raw.delete(key)
        finally:
            await raw.aclose()


Write = Callable[[int], Awaitable[None]]
Read = Callable[[int], Awaitable[None]]
Census = Callable[[Iterable[int]], Awaitable[Counter[int]]]


def turn_workload(
    adapter: Any, session: str, census_client: Callable[[], Any], *, unread: set[int] | None = None
) -> tuple[Write, Read, Census]:
    """The Redis workload, on one server or a cluster: turn ``k`` of ``session``.

    ``census_client()`` makes a raw client (closed after use) that reads the list as stored.
    With ``unread``, a turn a read does not find goes there instead of failing the read
    (without WAIT a failover may lose an acknowledged turn: the test checks them afterwards)."""
    from mas_storage_redis import session_key

    key = session_key(session)
    base = datetime(2026, 1, 1, tzinfo=UTC)

    async def write(k: int) -> None:
        # A fixed timestamp per turn: a retry sends exactly the same entry.
        stamp = base + timedelta(microseconds=k)
        await adapter.cache_turn(session, k, f"turn {k}", {"k": k}, timestamp=stamp)

    async def read(k: int) -> None:
        turn = await adapter.retrieve(f"{key}:{k}")
        if turn is None and unread is not None:
            unread.add(k)
            return
        assert turn is not None and turn["content"] == f"turn {k}", f"turn {k} read as {turn}"

    async def census(keys: Iterable[int]) -> Counter[int]:
        raw = census_client()
        try:
            items = await raw.lrange(key, 0, -1)
        finally:
            await raw.aclose()
        return Counter(int(json.loads(item)["turn_id"]) for item in items)

    return write, read, census


@dataclass
class ReadLog:
    """When each write was acknowledged, and each read that found nothing (key, when)."""

    acked_at: dict[int, float] = field(default_factory=dict)
    stale: list[tuple[int, float]] = field(default_factory=list)


def fact_workload(adapter: Any, collection: str, log: ReadLog | None = None) -> tuple[Write, Read]:
    """The Typesense workload, on one node or a cluster: fact ``k`` upserted by its id.

    Without ``log`` a read that finds nothing raises :class:`NotYetVisible` (judged by the
    replay rule of :class:`Target`); with it, the miss is logged as stale instead (a follower
    not yet caught up with an acknowledged write; the test bounds which keys and when). A read
    that finds another content always fails."""

    async def write(k: int) -> None:
        # upsert by id: a retry replaces the document, never adds one.
        assert await adapter.upsert(typesense_fact(k, collection)) == f"k{k}"
        if log is not None:
            log.acked_at.setdefault(k, time.monotonic())

    async def read(k: int) -> None:
        doc = await adapter.retrieve(f"k{k}")
        if doc is None:
            if log is None:
                raise NotYetVisible(f"k{k} read as None")
            log.stale.append((k, time.monotonic()))
            return
        assert doc["content"] == f"fact number {k}", f"k{k} read as {doc}"

    return write, read


def typesense_fact(k: int, session: str) -> dict[str, Any]:
    """Item ``k`` of a Typesense workload: keyed by its id (``k<k>``), searchable by "number"."""
    return {
        "id": f"k{k}",
        "content": f"fact number {k}",
        "session_id": session,
        "fact_type": "reliability",
        "confidence": 1.0,
        "created_at": k,
    }


@contextlib.asynccontextmanager
async def _typesense(
    outputs: dict[str, Any], _: Path | None, overrides: dict[str, Any]
) -> AsyncIterator[Target]:
    from typesense_scoped import admin_client, scoped_collection

    from mas_storage_typesense import TypesenseAdapter

    url = outputs["typesense_url"]
    collection = _run_id("ts").replace("-", "_")
    # The adapter holds a key scoped to its collection, as the stack's adapter key is; the
    # collection, the key and the census are the admin's.
    async with scoped_collection(outputs, collection) as api_key:
        config = {
            "url": url,
            "api_key": api_key,
            "collection_name": collection,
            "timeout": TIMEOUT,
            "connect_timeout": TIMEOUT,
            **overrides,
        }
        adapter = TypesenseAdapter(config)
        write, read = fact_workload(adapter, collection)

        async def census(keys: Iterable[int]) -> Counter[int]:
            async with admin_client(outputs) as client:
                response = await client.get(f"/collections/{collection}/documents/export")
                response.raise_for_status()
            lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
            return Counter(int(doc["id"][1:]) for doc in lines)

        async def verify(keys: set[int]) -> None:
            # Not only the stored documents: the full-text index answers for every one of them.
            result = await adapter.search({"q": "number", "query_by": "content"}, with_meta=True)
            assert result["found"] == len(keys), f"search finds {result['found']} of {len(keys)}"

        await adapter.connect()
        try:
            yield Target(
                "typesense",
                adapter,
                config["timeout"],
                write,
                read,
                census,
                lambda: adapter._client,
                verify,
                serves_reads_while_replaying=True,
            )
        finally:
            await adapter.disconnect()


@contextlib.asynccontextmanager
async def _neo4j(
    outputs: dict[str, Any], _: Path | None, overrides: dict[str, Any]
) -> AsyncIterator[Target]:
    from neo4j import AsyncGraphDatabase

    from mas_storage_neo4j import Neo4jAdapter

    run = _run_id("neo4j")
    auth = (outputs.get("neo4j_user") or "neo4j", outputs["neo4j_password"])
    config = {
        "url": outputs["neo4j_url"],
        "user": auth[0],
        "password": auth[1],
        "timeout": TIMEOUT,
        "connection_timeout": TIMEOUT,
        "max_retry_time": 1.0,
        **overrides,
    }
    adapter = Neo4jAdapter(config)

    async def write(k: int) -> None:
        # MERGE on id: a retry finds the node, never adds one.
        entity = {"id": f"{run}-{k}", "k": k, "test_run": run}
        stored = await adapter.store(
            {"type": "entity", "label": "TestReliability", "properties": entity}
        )
        assert stored == f"{run}-{k}"

    async def read(k: int) -> None:
        node = await adapter.retrieve(f"{run}-{k}")
        assert node is not None and node["properties"]["k"] == k, f"{run}-{k} read as {node}"

    async def graph(cypher: str) -> list[Any]:
        async with AsyncGraphDatabase.driver(
            outputs["neo4j_url"], auth=auth, notifications_min_severity="OFF"
        ) as driver:
            records, _, _ = await driver.execute_query(cypher, {"run": run}, database_="neo4j")
            return list(records)

    async def census(keys: Iterable[int]) -> Counter[int]:
        records = await graph("MATCH (n:TestReliability {test_run: $run}) RETURN n.k AS k")
        return Counter(int(r["k"]) for r in records)

    await adapter.connect()
    try:
        yield Target(
            "neo4j", adapter, config["timeout"], write, read, census, lambda: adapter._driver
        )
    finally:
        await adapter.disconnect()
        await graph("MATCH (n {test_run: $run}) DETACH DELETE n")


@contextlib.asynccontextmanager
async def _qdrant(
    outputs: dict[str, Any], path: Path | None, overrides: dict[str, Any], *, server: bool = False
) -> AsyncIterator[Target]:
    """Embedded on the private ``path`` (``qdrant``), or the outputs' server (``qdrant-server``,
    a collection of its own, dropped afterwards)."""
    from qdrant_modes import adapter_config, server_client, unique_collection

    from mas_storage_qdrant import QdrantAdapter

    settings = {"vector_size": 8, "timeout": TIMEOUT, **overrides}
    if server:
        collection = unique_collection("test_rel")
        adapter = QdrantAdapter(
            adapter_config(outputs, "server", collection_name=collection, **settings)
        )
    elif path is None:
        raise ValueError("the embedded Qdrant target needs a private path")
    else:
        collection = "test_rel"
        adapter = QdrantAdapter(
            adapter_config(outputs, "embedded", path=path, collection_name=collection, **settings)
        )

    async def write(k: int) -> None:
        # The caller's id makes the upsert idempotent: a retry replaces the point.
        point = {"id": k + 1, "vector": _vector(k), "content": f"episode {k}", "session_id": "r"}
        assert await adapter.store(point) == str(k + 1)

    async def read(k: int) -> None:
        record = await adapter.retrieve(str(k + 1))
        assert record is not None and record["content"] == f"episode {k}", f"{k} read as {record}"

    async def census(keys: Iterable[int]) -> Counter[int]:
        # Point ids are primary keys (no copy is possible): present or not, and nothing else.
        if server:  # a fresh client: the adapter's sockets may have died with the server
            client = server_client(outputs)
            try:
                records, _ = await client.scroll(collection, limit=100_000, with_payload=False)
                total = (await client.count(collection, exact=True)).count
            finally:
                await client.close()
            found = Counter(int(str(r.id)) - 1 for r in records)
        else:  # the path admits one client: the adapter's own
            wanted = list(keys)
            found = Counter(
                {k: 1 for k in wanted if await adapter.retrieve(str(k + 1)) is not None}
            )
            total = await adapter.count()
        assert total == sum(found.values()), f"{total} points for {len(found)} keys found"
        return found

    # The driver object that must survive every fault: embedded, the adapter (a reopen replaces
    # its client by design); server, its client.
    handle = (lambda: adapter._client) if server else (lambda: adapter)
    name = "qdrant-server" if server else "qdrant"
    await adapter.connect()
    try:
        yield Target(name, adapter, float(settings["timeout"]), write, read, census, handle)
    finally:
        await adapter.disconnect()
        if server:
            client = server_client(outputs)
            try:
                await client.delete_collection(collection)
            finally:
                await client.close()


def _vector(k: int) -> list[float]:
    return [float((k * 7 + i) % 11) + 1.0 for i in range(8)]


# -- reporting --------------------------------------------------------------------------------

#: Columns of the measured table (issue #11's closing note), in order.
TABLE_COLUMNS = (
    ("backend", "backend"),
    ("fault", "fault"),
    ("outage_s", "outage s"),
    ("calls_failed", "calls failed"),
    ("error_types", "error types"),
    ("max_failed_call_s", "slowest failure s"),
    ("first_success_after_s", "first success after s"),
    ("failed_after_up", "failed after up"),
    ("writes_acked", "writes acked"),
    ("writes_found", "found after"),
    ("retried", "retried"),
    ("found_after_retry", "found after retry"),
    ("reads_behind_replay", "reads behind replay"),
)


def table_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The measured table as Markdown lines."""
    yield "| " + " | ".join(title for _, title in TABLE_COLUMNS) + " |"
    yield "|" + "---|" * len(TABLE_COLUMNS)
    for row in rows:
        cells = []
        for key, _ in TABLE_COLUMNS:
            value = row.get(key)
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in sorted(value.items())) or "-"
            cells.append("-" if value is None else str(value))
        yield "| " + " | ".join(cells) + " |"


def write_results(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` (with the time and host of the run) as JSON to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
