"""The secrets check of issue #11, for the whole reliability suite: one sweep per session.

No password or API key of the stack outputs may appear in a log record, an exception message or
an adapter ``repr``. ``conftest.py`` starts one :class:`SecretSweep` for the session (an autouse
fixture) and feeds it from pytest's hooks; the helpers of the suite feed it what they see:

* **log records**: :class:`SecretWatch` turns every logger to DEBUG and scans each record
  (message, arguments, traceback) as it is logged, without storing it;
* **exceptions**: :meth:`SecretSweep.exception` scans ``str``/``repr`` of an exception and of
  everything chained to it (:func:`exception_texts`). The fault workload sends every error it
  collected during an outage, the hostile-input guard every error a hostile call raised, the
  concurrency test every error of its calls, the secrets module every failure it provoked; the
  conftest sends whatever escapes a test, and the text of every failure report;
* **spans and metric attributes**: while the sweep runs, mas_storage's OpenTelemetry output goes
  to the SDK's in-memory exporter and reader (:mod:`otel_sinks`), so every adapter operation of
  the suite is a span; after each test phase every finished span (name, status, attributes,
  events, links) and every metric data point's attributes are scanned
  (:meth:`SecretSweep.telemetry`), and the exporter is emptied;
* **adapter reprs**: every :class:`~mas_storage.StorageAdapter` created while the sweep runs is
  recorded (its ``__init__`` is wrapped) and scanned, with the objects it holds
  (:func:`adapter_texts`), after the test phase that created it; the adapters still alive are
  scanned again after each test (module-scoped ones, connected).

When the last test of the suite has run, the sweep stops (logging and ``__init__`` restored, so
tests of other directories in the same session run as they would alone) and raises if anything
leaked: an error at the teardown of that test, and the run goes red. The conftest prints its
one-line summary at the end.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from otel_sinks import Sinks, span_texts
from stack_secrets import MaskedOutputs, stack_secrets

from mas_storage import StorageAdapter, configure_telemetry

__all__ = [
    "LOGGERS",
    "MaskedOutputs",
    "SecretLeak",
    "SecretSweep",
    "SecretWatch",
    "WatchWindow",
    "active_sweep",
    "adapter_texts",
    "exception_texts",
    "find_secrets",
    "private_key_secrets",
    "running_sweep",
    "stack_secrets",
]

#: Loggers set to DEBUG by name even before they exist: the adapters' and their drivers'.
LOGGERS = (
    "",  # root
    "mas_storage",
    "mas_storage_postgres",
    "mas_storage_redis",
    "mas_storage_qdrant",
    "mas_storage_neo4j",
    "mas_storage_typesense",
    "mas_devstack",
    "neo4j",
    "httpx",
    "httpcore",
    "aiohttp",
    "redis",
    "psycopg",
    "psycopg.pool",
    "qdrant_client",
    "urllib3",
    "grpc",
    "asyncio",
)
#: Attributes of an adapter that are the credentials it needs, not objects it holds.
PLAIN_VALUES = (str, bytes, int, float, bool, tuple, list, dict, set, frozenset, type(None))
#: Leaks kept for the failure report (all are counted).
KEPT_LEAKS = 50


# -- what is a secret, and where it is -------------------------------------------------------


def private_key_secrets(paths: Iterable[Path]) -> list[str]:
    """The secrets of PEM private keys (the stack's CA key and the servers' keys): each
    base64 line of their bodies, so a key leaked whole, cut into lines or inside a ``repr``
    (its newlines escaped) is found. Lines under 16 characters (a body's short last line) are
    left out: too short to be told from chance."""
    found: list[str] = []
    for path in paths:
        for line in path.read_text(encoding="ascii").splitlines():
            line = line.strip()
            if line and not line.startswith("-----") and len(line) >= 16:
                found.append(line)
    return sorted(set(found))


def exception_texts(exc: BaseException) -> list[str]:
    """``str`` and ``repr`` of ``exc`` and of every exception chained to it (cause, context,
    ``.orig``), each once."""
    texts: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), *map(str, getattr(current, "__notes__", ()))]
        for linked in (current.__cause__, current.__context__, getattr(current, "orig", None)):
            if isinstance(linked, BaseException):
                todo.append(linked)
    return texts


def adapter_texts(adapter: StorageAdapter) -> list[tuple[str, str]]:
    """``(what, text)``: ``repr``/``str`` of the adapter, of the driver object it exposes, and of
    every object it holds (config objects, clients, collectors: what a traceback or a debugger
    shows). Plain values (strings, tuples, dicts...) are the credentials themselves, which the
    adapter must hold to connect, and are left out, like ``config``."""
    texts = [("repr", repr(adapter)), ("str", str(adapter))]
    for name in ("client", "pool", "driver"):
        try:
            value = getattr(adapter, name, None)
        except Exception:  # a property of a disconnected adapter may refuse
            value = None
        if value is not None:
            texts.append((f"repr of .{name}", repr(value)))
    for name, value in vars(adapter).items():
        if not isinstance(value, PLAIN_VALUES):
            texts.append((f"repr of .{name}", repr(value)))
    return texts


def find_secrets(texts: Iterable[str], secrets: Sequence[str]) -> list[str]:
    """The texts that contain one of ``secrets``: an excerpt around the hit, every secret in
    it masked (a failure report must not print what it found)."""
    longest_first = sorted(secrets, key=len, reverse=True)
    leaks = []
    for text in texts:
        for secret in secrets:
            at = text.find(secret)
            if at >= 0:
                excerpt = text[max(0, at - 80) : at + len(secret) + 40]
                for known in longest_first:
                    excerpt = excerpt.replace(known, "<SECRET>")
                leaks.append(excerpt)
    return leaks


# -- log records ---------------------------------------------------------------------------------


class SecretWatch(logging.Filter):
    """Scans every log record (message, arguments, traceback) for the stack's secrets.

    :meth:`watching` turns every logger to DEBUG: the root and every logger of :data:`LOGGERS`,
    and every existing logger with a level of its own, by level; every logger that exists gets
    this watch as its first filter (:meth:`adopt` gives it to loggers created since). A logger's
    filters see each record logged on it before any handler does: the watch scans the record,
    then lets it through only if it would have been emitted without the watch. So pytest's log
    capture sees what it always sees, while the DEBUG records of thousands of calls are
    scanned, not stored. A handler on the root scans the records of loggers not adopted yet.

    Watches nest (each scans each record once, by its own mark, and an inner watch's filter
    comes before the outer's, which may drop the record), so a test can check the mechanism
    with a private watch inside the session's.
    """

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = list(secrets)
        self.records = 0
        self.leaks: list[str] = []
        self.leak_count = 0
        self.by_logger: Counter[str] = Counter()
        #: Called with each leak's description (the sweep names the test it happened in).
        self.on_leak: Any = None
        self._mark = f"_secret_scanned_{id(self):x}"
        self._lock = threading.Lock()
        self._floor: dict[str, int] = {}
        self._own_levels: dict[int, int] = {}  # id(logger) -> its level before the watch
        self._changed: list[tuple[logging.Logger, int]] = []
        self._filtered: list[logging.Logger] = []
        self._late = _LateRecords(self)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Search for these too from now on (credentials a test made up, e.g. wrong ones)."""
        with self._lock:
            self.secrets = sorted({*self.secrets, *secrets})

    def scan(self, record: logging.LogRecord) -> None:
        """Check one record; each record is scanned once by each watch."""
        if record.__dict__.get(self._mark):
            return
        record.__dict__[self._mark] = True
        try:
            message = record.getMessage()
        except Exception as exc:  # a malformed record is a finding of its own
            message = f"<unformattable record {record.msg!r}: {exc!r}>"
        texts = [message, repr(record.args)]
        if record.exc_info and record.exc_info[1] is not None:
            texts += exception_texts(record.exc_info[1])
            texts.append(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            texts.append(record.stack_info)
        found = find_secrets(texts, self.secrets)
        with self._lock:
            self.records += 1
            self.by_logger[record.name.split(".")[0]] += 1
            if found:  # one entry per record: its first leaking text
                leak = f"{record.name} {record.levelname}: {found[0]}"
                self.leak_count += 1
                if len(self.leaks) < KEPT_LEAKS:
                    self.leaks.append(leak)
        if found and self.on_leak is not None:
            self.on_leak(leak)

    def filter(self, record: logging.LogRecord) -> bool:
        self.scan(record)
        return record.levelno >= self._floor.get(record.name, logging.WARNING)

    def _unwatched_level(self, log: logging.Logger) -> int:
        """The level ``log`` would have without the watch (its own, or its nearest ancestor's)."""
        node: logging.Logger | None = log
        while node is not None:
            level = self._own_levels.get(id(node), node.level)
            if level:
                return level
            node = node.parent
        return logging.WARNING

    def adopt(self) -> None:
        """Take every logger not watched yet: DEBUG if it has a level of its own, and the filter."""
        manager = logging.Logger.manager
        known = {id(log) for log in self._filtered}
        loggers = [logging.getLogger(name) for name in LOGGERS]
        loggers += [log for log in manager.loggerDict.values() if isinstance(log, logging.Logger)]
        fresh = [log for log in {id(log): log for log in loggers}.values() if id(log) not in known]
        for log in fresh:
            if log.level != logging.DEBUG and (log.level or log.name in LOGGERS):
                self._own_levels[id(log)] = log.level
        for log in fresh:  # floors before any level changes: every ancestor's is known above
            self._floor[log.name] = self._unwatched_level(log)
        for log in fresh:
            if id(log) in self._own_levels:
                self._changed.append((log, log.level))
                log.setLevel(logging.DEBUG)
            if self not in log.filters:  # first: a nested watch scans before an outer one drops
                log.filters.insert(0, self)
            self._filtered.append(log)

    @contextmanager
    def watching(self) -> Iterator[SecretWatch]:
        """Watch every logger at DEBUG (see the class docstring); restore everything after."""
        root = logging.getLogger()
        self.adopt()
        root.addHandler(self._late)
        try:
            yield self
        finally:
            root.removeHandler(self._late)
            for log, level in reversed(self._changed):
                log.setLevel(level)
            for log in self._filtered:
                log.removeFilter(self)
            self._changed.clear()
            self._filtered.clear()
            self._own_levels.clear()

    def window(self) -> WatchWindow:
        """What this watch sees from now on (a test module's share of the session's records)."""
        return WatchWindow(self)

    def assert_clean(self) -> None:
        """Fail naming every leak seen."""
        assert not self.leak_count, f"secrets in {self.leak_count} log records:\n" + "\n".join(
            self.leaks[:20]
        )


class _LateRecords(logging.Handler):
    """Scans the records that reach the root from loggers without the watch's filter."""

    def __init__(self, watch: SecretWatch) -> None:
        super().__init__(logging.DEBUG)
        self.watch = watch

    def emit(self, record: logging.LogRecord) -> None:
        self.watch.scan(record)


class WatchWindow:
    """The records a :class:`SecretWatch` scanned since the window opened, and their leaks."""

    def __init__(self, watch: SecretWatch) -> None:
        self.watch = watch
        self._records = watch.records
        self._by_logger = Counter(watch.by_logger)
        self._leaks = watch.leak_count
        self._first_kept = len(watch.leaks)

    @property
    def records(self) -> int:
        return self.watch.records - self._records

    @property
    def by_logger(self) -> Counter[str]:
        return self.watch.by_logger - self._by_logger

    @property
    def leak_count(self) -> int:
        return self.watch.leak_count - self._leaks

    def assert_clean(self) -> None:
        """Fail naming the leaks seen since the window opened."""
        assert not self.leak_count, f"secrets in {self.leak_count} log records:\n" + "\n".join(
            self.watch.leaks[self._first_kept :][:20]
        )


# -- the session's sweep -------------------------------------------------------------------------


class SecretLeak(AssertionError):
    """A secret was seen somewhere during the session (raised at the session's end)."""


_ACTIVE: SecretSweep | None = None


def running_sweep() -> SecretSweep | None:
    """The session's sweep while it runs, else ``None``."""
    return _ACTIVE


def active_sweep() -> SecretSweep:
    """The session's running sweep (the conftest starts it before the first test)."""
    if _ACTIVE is None:
        raise RuntimeError("no secret sweep is running: tests/reliability/conftest.py starts it")
    return _ACTIVE


class SecretSweep:
    """Log records, exceptions and adapter reprs of one session, scanned for the secrets."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self.watch = SecretWatch(secrets)
        self.watch.on_leak = lambda leak: self._leak("log record", leak)
        self.exceptions = 0
        self.reprs = 0
        self.reports = 0
        self.spans = 0
        self.metric_attributes = 0
        self._sinks: Sinks | None = None
        self.leaks: list[str] = []
        self.leak_count = 0
        self.where = "session start"  # the test phase running now, named in each leak
        self._created: list[StorageAdapter] = []
        self._live: weakref.WeakSet[StorageAdapter] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._patch = pytest.MonkeyPatch()
        self._stack = ExitStack()
        self._raised = 0  # leaks already reported by an earlier stop()

    @property
    def secrets(self) -> list[str]:
        return self.watch.secrets

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Search for these too from now on (credentials the tests made up)."""
        self.watch.add_secrets(secrets)

    def _leak(self, kind: str, excerpt: str) -> None:
        with self._lock:
            self.leak_count += 1
            if len(self.leaks) < KEPT_LEAKS:
                self.leaks.append(f"[{self.where}] {kind}: {excerpt}")

    def texts(self, kind: str, texts: Iterable[str]) -> list[str]:
        """Scan ``texts`` (one finding of kind ``kind``); return the leaking excerpts."""
        found = find_secrets(texts, self.secrets)
        for excerpt in found[:1]:
            self._leak(kind, excerpt)
        return found

    def exception(self, exc: BaseException, where: str = "") -> list[str]:
        """Scan an exception and its chain; return the leaking excerpts."""
        with self._lock:
            self.exceptions += 1
        return self.texts(f"exception {where}".strip(), exception_texts(exc))

    def adapter(self, adapter: StorageAdapter, where: str = "") -> list[str]:
        """Scan an adapter's ``repr``/``str`` and those of the objects it holds."""
        texts = [text for _, text in adapter_texts(adapter)]
        with self._lock:
            self.reprs += len(texts)
        return self.texts(f"repr of {type(adapter).__name__} {where}".strip(), texts)

    def telemetry(self, sinks: Sinks) -> list[str]:
        """Scan the spans finished so far (then drop them) and the metric attributes of
        ``sinks``; return the leaking excerpts."""
        spans = sinks.spans.get_finished_spans()
        sinks.spans.clear()
        texts = [text for span in spans for text in span_texts(span)]
        attributes = sinks.metric_attribute_texts()
        with self._lock:
            self.spans += len(spans)
            self.metric_attributes += len(attributes)
        return self.texts("span", texts) + self.texts("metric attribute", attributes)

    # -- fed by the conftest ---------------------------------------------------------------------

    def after_phase(self, nodeid: str, call: pytest.CallInfo[None], report: Any) -> None:
        """After each setup, call and teardown: adopt new loggers, scan what the phase produced
        (adapters it created, an exception that escaped, the report's texts)."""
        self.where = nodeid
        self.watch.adopt()
        self.scan_adapters(every=call.when == "teardown")
        if self._sinks is not None:
            self.telemetry(self._sinks)
        if call.excinfo is not None:
            self.exception(call.excinfo.value, "escaping the test")
        texts = [content for _, content in report.sections]
        if report.failed:
            texts.append(report.longreprtext)
        if texts:
            with self._lock:
                self.reports += 1
            self.texts("test report", texts)

    def scan_adapters(self, *, every: bool = False) -> None:
        """Scan the adapters created since the last scan; with ``every``, all live ones too."""
        created, self._created = self._created, []
        todo = {id(a): a for a in [*created, *(list(self._live) if every else [])]}
        for adapter in todo.values():
            self.adapter(adapter, "(created by the suite)")

    def start(self) -> None:
        """Watch the logs and record every adapter created, until :meth:`stop` (again, after a
        stop: when the session comes back to the suite's tests after others)."""
        global _ACTIVE
        if _ACTIVE is not None:
            raise RuntimeError("a secret sweep is already running")
        original = StorageAdapter.__init__

        @functools.wraps(original)
        def recording_init(adapter: StorageAdapter, *args: Any, **kwargs: Any) -> None:
            original(adapter, *args, **kwargs)
            self._created.append(adapter)
            self._live.add(adapter)

        self._patch.setattr(StorageAdapter, "__init__", recording_init)
        self._stack.enter_context(self.watch.watching())
        self._sinks = Sinks()
        configure_telemetry(
            tracer_provider=self._sinks.tracer_provider,
            meter_provider=self._sinks.meter_provider,
        )
        _ACTIVE = self

    def stop(self) -> None:
        """Scan the adapters still alive, restore logging and ``__init__``, and raise
        :class:`SecretLeak` if a secret was seen anywhere. Idempotent (raises once)."""
        global _ACTIVE
        if _ACTIVE is not self:
            return
        try:
            self.where = f"end of the suite (after {self.where})"
            self.scan_adapters(every=True)
            if self._sinks is not None:
                self.telemetry(self._sinks)
        finally:
            _ACTIVE = None
            configure_telemetry()
            if self._sinks is not None:
                self._sinks.shutdown()
                self._sinks = None
            self._stack.close()
            self._patch.undo()
        if self.leak_count > self._raised:
            self._raised = self.leak_count
            raise SecretLeak(
                f"{self.leak_count} secret leak(s) in this session (first {len(self.leaks)}, "
                "secrets masked):\n" + "\n".join(self.leaks)
            )

    def summary(self) -> str:
        """One line: what was scanned, and how many leaks were found."""
        families = ", ".join(
            f"{name or 'root'} {n:,}" for name, n in self.watch.by_logger.most_common()
        )
        return (
            f"{self.watch.records:,} log records at DEBUG ({families or 'no logger'}); "
            f"{self.exceptions:,} exceptions; {self.reprs:,} adapter reprs; "
            f"{self.spans:,} spans, {self.metric_attributes:,} metric attributes; "
            f"{self.reports:,} test reports; {len(self.secrets)} secrets searched; "
            f"leaks: {self.leak_count}"
        )
