"""The :class:`Stack`: up, down, status, and stop/start of one service, all by PID file."""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from ._errors import DevstackError, ServiceStartError
from ._layout import PORT_BASE_ENV, SERVICE_NAMES, Layout, Ports, resolve_root
from ._migrate import apply_migrations
from ._process import (
    DetachedExecutor,
    is_alive,
    kill_group,
    load_pid_file,
    log_tail,
    port_open,
    port_owner,
    read_pid_file,
    terminate,
    write_pid_file,
)
from ._secrets import Secrets, load_or_create_secrets, write_private_json
from ._services import SERVICE_CLASSES, Postgres, ProcessService, Service
from ._versions import version_drift

#: How many times a server that exits during its start is started (see ``_start_process``).
START_ATTEMPTS = 3

log = logging.getLogger("mas_devstack")


@dataclass(frozen=True)
class ServiceStatus:
    """What ``status`` knows of one service."""

    name: str
    running: bool
    """True when it answers an authenticated request now."""
    pid: int | None
    address: str
    version: str | None
    state: str
    """``running``, ``stopped``, ``unresponsive`` (PID alive, no answer) or ``embedded``."""


@dataclass(frozen=True)
class UpResult:
    """What ``up`` did: the outputs written, the services it started (not reused)."""

    outputs: dict[str, Any]
    started: list[str]
    migrations: list[str] = field(default_factory=list)
    """Ids of the yoyo migrations applied by this call."""


class Stack:
    """The five backends of one root (``<root>/.mas``), as real processes on 127.0.0.1.

    Every method is safe to call again: ``up`` reuses what runs and answers, ``down`` and
    ``stop`` touch only processes whose PID file this stack wrote. Calls from several
    processes are serialised by a lock file. Blocking: from async code use
    ``await asyncio.to_thread(stack.up)``.
    """

    def __init__(self, root: Path | str | None = None, *, port_base: int | None = None) -> None:
        self.root = resolve_root(root)
        self.layout = Layout(self.root)
        self.ports = Ports.resolve(port_base)
        self._secrets: Secrets | None = None
        self._services: dict[str, Service] = {}
        self._thread_lock = threading.RLock()
        self._state_lock = threading.RLock()  # secrets and service objects, across workers
        self._lock_depth = 0
        self._lock_handle: IO[str] | None = None

    def __repr__(self) -> str:
        return f"Stack(root={str(self.root)!r}, ports={self.ports})"

    @property
    def outputs_path(self) -> Path:
        """``<root>/.mas/stack-outputs.json``."""
        return self.layout.outputs_path

    # -- public API ------------------------------------------------------------------------

    def up(self, services: Iterable[str] | None = None) -> UpResult:
        """Start what is not running (concurrently), apply migrations, write the outputs."""
        names = self._names(services)
        with self._exclusive():
            self._load_secrets()
            procs = [n for n in names if not SERVICE_CLASSES[n].embedded]
            results: dict[str, bool] = {}
            errors: list[DevstackError] = []
            with ThreadPoolExecutor(max_workers=max(1, len(procs))) as pool:
                futures = {n: pool.submit(self._ensure_running, n) for n in procs}
                for name, future in futures.items():
                    try:
                        results[name] = future.result()
                    except DevstackError as exc:
                        errors.append(exc)
            for name in names:
                if SERVICE_CLASSES[name].embedded:
                    try:
                        self._ensure_embedded(name)
                    except DevstackError as exc:
                        errors.append(exc)
            if errors:
                if len(errors) == 1:
                    raise errors[0]
                raise DevstackError("\n\n".join(str(exc) for exc in errors))
            migrations: list[str] = []
            try:
                if "postgres" in names:
                    migrations = self._migrate()
            finally:
                outputs = self._write_outputs()
            for problem in version_drift():
                log.warning("%s", problem)
            started = [n for n in names if results.get(n)]
            return UpResult(outputs=outputs, started=started, migrations=migrations)

    def down(self, names: Iterable[str] | None = None) -> list[str]:
        """Stop (SIGTERM, then SIGKILL after a timeout) what this stack started; returns names."""
        chosen = [n for n in self._names(names) if not SERVICE_CLASSES[n].embedded]
        if not self.layout.run_dir.is_dir():
            return []  # never started here: nothing to stop, nothing to create
        with self._exclusive(), ThreadPoolExecutor(max_workers=max(1, len(chosen))) as pool:
            stopped = list(pool.map(self._stop_one, chosen, [False] * len(chosen)))
        return [name for name, done in zip(chosen, stopped, strict=True) if done]

    def stop(self, name: str, *, kill: bool = False) -> bool:
        """Stop one service by PID: graceful, or SIGKILL (its whole process group) if ``kill``.

        Returns False when it was not running. The embedded Qdrant has nothing to stop.
        """
        self._names([name])
        if SERVICE_CLASSES[name].embedded or not self.layout.run_dir.is_dir():
            return False
        with self._exclusive():
            return self._stop_one(name, kill)

    def start(self, name: str) -> bool:
        """Start one service again, on its existing data and secrets; False if it already ran."""
        self._names([name])
        with self._exclusive():
            self._load_secrets()
            if SERVICE_CLASSES[name].embedded:
                self._ensure_embedded(name)
                return False
            started = self._ensure_running(name)
            if not self.outputs_path.exists():
                self._write_outputs()
            return started

    def pid(self, name: str) -> int | None:
        """The PID of the running service, None when stopped (or embedded)."""
        self._names([name])
        record = read_pid_file(self.layout.pid_path(name))
        return record.pid if record else None

    def status(self) -> dict[str, ServiceStatus]:
        """Each service: does it answer now, its PID, address and version."""
        if not self.layout.secrets_path.exists():
            return {name: self._stopped(name) for name in SERVICE_NAMES}
        self._load_secrets()
        with ThreadPoolExecutor(max_workers=len(SERVICE_NAMES)) as pool:
            found = pool.map(self._status_one, SERVICE_NAMES)
        return dict(zip(SERVICE_NAMES, found, strict=True))

    def outputs(self) -> dict[str, Any]:
        """The stack-outputs dict (what ``up`` writes), from the secrets and ports.

        Each service writes its backend's keys, named as the adapters' settings models read
        them (``mas_storage.stack_output_keys()``; a unit test holds the two together).
        """
        self._load_secrets()
        merged: dict[str, Any] = {}
        for name in SERVICE_NAMES:
            merged.update(self._service(name).outputs())
        return dict(sorted(merged.items()))

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _names(names: Iterable[str] | None) -> list[str]:
        if names is None:
            return list(SERVICE_NAMES)
        if isinstance(names, str):
            names = [names]
        chosen = list(dict.fromkeys(names))
        unknown = [n for n in chosen if n not in SERVICE_CLASSES]
        if unknown:
            raise DevstackError(f"unknown service(s) {unknown}; known: {', '.join(SERVICE_NAMES)}")
        return [n for n in SERVICE_NAMES if n in chosen]

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One mutating call at a time: a thread lock here, a lock file between processes."""
        with self._thread_lock:
            if self._lock_depth == 0:
                self.layout.ensure()
                handle = self.layout.lock_path.open("a")
                fcntl.flock(handle, fcntl.LOCK_EX)
                self._lock_handle = handle
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_handle is not None:
                    fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
                    self._lock_handle.close()
                    self._lock_handle = None

    def _load_secrets(self) -> Secrets:
        with self._state_lock:
            if self._secrets is None:
                self.layout.ensure()
                self._secrets = load_or_create_secrets(self.layout.secrets_path)
            return self._secrets

    def _service(self, name: str) -> Service:
        with self._state_lock:
            if name not in self._services:
                self._services[name] = SERVICE_CLASSES[name](
                    self.layout, self.ports, self._load_secrets()
                )
            return self._services[name]

    def _process_service(self, name: str) -> ProcessService:
        service = self._service(name)
        assert isinstance(service, ProcessService)
        return service

    def _ensure_running(self, name: str) -> bool:
        """Reuse the service if its PID lives and it answers; else (re)start it. True: started."""
        service = self._process_service(name)
        pid_path = self.layout.pid_path(name)
        stale = load_pid_file(pid_path)
        if stale is not None and not is_alive(stale):
            # What a SIGKILLed leader leaves behind (PostgreSQL backends still holding its
            # shared memory) would make the new server refuse to start.
            kill_group(stale)
        record = read_pid_file(pid_path)
        if record is not None:
            if service.check(service.reuse_timeout):
                log.info("%s: running (pid %d), reused", name, record.pid)
                return False
            log.warning("%s: pid %d is alive but does not answer: restarting it", name, record.pid)
            terminate(record, service.stop_signal, service.stop_timeout)
            pid_path.unlink(missing_ok=True)
        self._start_process(service)
        return True

    def _start_process(self, service: ProcessService) -> None:
        name = service.name
        began = time.monotonic()
        service.prepare()
        ports = [service.port]
        if name == "typesense":
            ports.append(self.ports.typesense_peering)
        for port in ports:
            if port_open(port):
                raise DevstackError(
                    f"{name}: port {port} is already taken by {port_owner(port)}, which this "
                    f"stack did not start (no PID file in {self.layout.run_dir}); stop it or "
                    f"set {PORT_BASE_ENV}"
                )
        log_path = self.layout.log_path(name)
        secrets = self._load_secrets().values()
        with log_path.open("ab") as out:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            out.write(f"\n=== mas-devstack: starting {name} at {stamp} ===\n".encode())
            out.flush()
            executor = DetachedExecutor(
                service.command(),
                port=service.port,
                check=lambda: service.check(2.0),
                log=out,
                timeout=service.start_timeout,
                env=service.env(),
                cwd=service.data_dir,
                popen_kwargs=service.popen_kwargs(),
            )
            # Our ports lie inside Linux's ephemeral range (32768-60999), so a client socket of
            # any process may briefly hold one of them as its local port, and the server then
            # exits at once ("Fail to listen"; seen once for Typesense's peering port). A server
            # that exits during its start is therefore started again, twice at most.
            retrying = Retrying(
                retry=retry_if_exception_type(ProcessExitedWithError),
                stop=stop_after_attempt(START_ATTEMPTS),
                wait=wait_fixed(2.0),
                before_sleep=lambda state: log.warning(
                    "%s: exited during its start; starting it again (attempt %d of %d)",
                    name,
                    state.attempt_number + 1,
                    START_ATTEMPTS,
                ),
                reraise=True,
            )
            try:
                retrying(executor.start)
            except ProcessExitedWithError as exc:
                tail = log_tail(log_path, redact=secrets)
                reason = f"it exited with status {exc.exit_code}"
                raise ServiceStartError(name, reason, tail) from None
            except TimeoutExpired:
                raise ServiceStartError(
                    name,
                    f"it did not answer within {service.start_timeout:.0f} s (killed)",
                    log_tail(log_path, redact=secrets),
                ) from None
            except AlreadyRunning:
                raise DevstackError(
                    f"{name}: port {service.port} was taken by {port_owner(service.port)} "
                    "while starting"
                ) from None
            except OSError as exc:
                raise ServiceStartError(name, f"could not run it: {exc}") from None
            record = executor.detach()
        write_pid_file(self.layout.pid_path(name), record)
        try:
            service.after_start()
        except Exception as exc:
            raise ServiceStartError(
                name,
                f"it runs (pid {record.pid}) but setting it up failed: {type(exc).__name__}: {exc}",
                log_tail(log_path, redact=secrets),
            ) from None
        log.info("%s: started (pid %d) in %.1f s", name, record.pid, time.monotonic() - began)

    def _ensure_embedded(self, name: str) -> None:
        service = self._service(name)
        service.prepare()
        try:
            service.probe(30.0)
        except Exception as exc:
            raise DevstackError(f"{name}: {service.address} is not usable: {exc}") from None
        log.info("%s: embedded, %s", name, service.address)

    def _stop_one(self, name: str, kill: bool = False) -> bool:
        # The class suffices (no secrets needed to stop); a configured instance may differ.
        found = self._services.get(name)
        service = type(found) if found is not None else SERVICE_CLASSES[name]
        assert issubclass(service, ProcessService)
        pid_path = self.layout.pid_path(name)
        record = read_pid_file(pid_path)
        if record is None:
            return False
        if kill:
            kill_group(record)
            log.info("%s: killed (pid %d)", name, record.pid)
        elif terminate(record, service.stop_signal, service.stop_timeout):
            log.info("%s: stopped (pid %d)", name, record.pid)
        else:
            log.warning("%s: pid %d ignored the stop signal: killed", name, record.pid)
        pid_path.unlink(missing_ok=True)
        return True

    def _migrate(self) -> list[str]:
        service = self._service("postgres")
        assert isinstance(service, Postgres)
        applied = apply_migrations(service.url, self.root / "migrations")
        if applied:
            log.info("postgres: applied migrations %s", ", ".join(applied))
        return applied

    def _write_outputs(self) -> dict[str, Any]:
        outputs = self.outputs()
        write_private_json(self.outputs_path, outputs)
        return outputs

    def _stopped(self, name: str) -> ServiceStatus:
        state = "embedded" if SERVICE_CLASSES[name].embedded else "stopped"
        return ServiceStatus(name, False, None, "", None, state)

    def _status_one(self, name: str) -> ServiceStatus:
        service = self._service(name)
        if service.embedded:
            ok = service.check(10.0)
            version = service.version() if ok else None
            return ServiceStatus(name, ok, None, service.address, version, "embedded")
        record = read_pid_file(self.layout.pid_path(name))
        if record is None:
            return ServiceStatus(name, False, None, service.address, None, "stopped")
        if not service.check(2.0):
            return ServiceStatus(name, False, record.pid, service.address, None, "unresponsive")
        try:
            version = service.version(2.0)
        except Exception:
            version = None
        return ServiceStatus(name, True, record.pid, service.address, version, "running")
