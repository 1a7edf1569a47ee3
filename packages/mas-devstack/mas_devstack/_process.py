"""Processes of the stack: PID files, liveness, detached start with mirakuru, stop by PID.

A PID file holds the PID and the process start time, so a PID that the kernel reused for some
other process is never mistaken for ours (and never signalled).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil
from mirakuru import Executor
from mirakuru.base import ENV_UUID
from mirakuru.exceptions import ProcessExitedWithError

LOOPBACK = "127.0.0.1"

# Popen handles of the services this process started: kept so that their exit status is
# collected (no zombies while we live) and no "still running" ResourceWarning fires on GC.
_CHILDREN: dict[int, subprocess.Popen[Any]] = {}
_CHILDREN_LOCK = threading.Lock()


@atexit.register
def _release_children() -> None:
    """At exit, let go of the services still running without a "still running" warning.

    They outlive this process by design (each leads its own session; init adopts them), but a
    ``Popen`` collected at interpreter teardown with no exit status warns (ResourceWarning),
    e.g. after a test restarted a service in-process.
    """
    with _CHILDREN_LOCK:
        for proc in _CHILDREN.values():
            if proc.poll() is None:
                proc.returncode = 0  # not ours to wait for: this process ends first
        _CHILDREN.clear()


@dataclass(frozen=True)
class PidRecord:
    """One started service process: its PID and its start time (seconds since the epoch)."""

    pid: int
    create_time: float

    def dump(self) -> str:
        return f"{self.pid}\n{self.create_time:.3f}\n"

    @classmethod
    def parse(cls, text: str) -> PidRecord | None:
        """The record in ``text``, or None when it is not one (a damaged file is stale)."""
        parts = text.split()
        if len(parts) != 2:
            return None
        try:
            pid, created = int(parts[0]), float(parts[1])
        except ValueError:
            return None
        return cls(pid, created) if pid > 0 else None

    @classmethod
    def of(cls, pid: int) -> PidRecord:
        return cls(pid, psutil.Process(pid).create_time())


def load_pid_file(path: Path) -> PidRecord | None:
    """The record at ``path``, alive or not; None when missing or damaged."""
    try:
        return PidRecord.parse(path.read_text(encoding="ascii"))
    except (OSError, UnicodeError):
        return None


def read_pid_file(path: Path) -> PidRecord | None:
    """The record at ``path`` if its process is alive; a stale or damaged file is removed."""
    if not path.exists():
        return None
    record = load_pid_file(path)
    if record is not None and is_alive(record):
        return record
    path.unlink(missing_ok=True)
    return None


def write_pid_file(path: Path, record: PidRecord) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(record.dump(), encoding="ascii")
    os.replace(tmp, path)


def _reap(pid: int) -> None:
    with _CHILDREN_LOCK:
        proc = _CHILDREN.get(pid)
        if proc is not None and proc.poll() is not None:
            del _CHILDREN[pid]


def is_alive(record: PidRecord) -> bool:
    """True when ``record``'s process still runs (a zombie or a reused PID is not alive)."""
    _reap(record.pid)
    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > 1.0:
            return False
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _group(record: PidRecord) -> list[psutil.Process]:
    """The processes of ``record``'s process group (it leads its own session) started with it."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == record.pid and (
                proc.create_time() >= record.create_time - 1.0
            ):
                members.append(proc)
        except (OSError, psutil.Error):
            continue
    return members


def kill_group(record: PidRecord, timeout: float = 15.0) -> None:
    """SIGKILL ``record``'s process and whatever is left of its group, and wait until gone."""
    members = _group(record)
    if is_alive(record) and not any(p.pid == record.pid for p in members):
        members.append(psutil.Process(record.pid))
    for proc in members:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(members, timeout=timeout)
    _reap(record.pid)


def terminate(record: PidRecord, stop_signal: int, timeout: float) -> bool:
    """Stop gracefully with ``stop_signal``; SIGKILL the group after ``timeout`` s.

    Returns True when the graceful stop sufficed. A SIGSTOPped process gets SIGCONT too, so it
    can act on the signal.
    """
    graceful = True
    if is_alive(record):
        try:
            proc = psutil.Process(record.pid)
            proc.send_signal(stop_signal)
            proc.send_signal(signal.SIGCONT)
            proc.wait(timeout=timeout)
        except psutil.TimeoutExpired:
            graceful = False
        except psutil.NoSuchProcess:
            pass
    kill_group(record)
    return graceful


def port_open(port: int, host: str = LOOPBACK, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_owner(port: int) -> str:
    """Who listens on ``port`` (``pid 123 (postgres)``), for error messages."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    return "an unknown process"
                try:
                    return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
                except psutil.Error:
                    return f"pid {conn.pid}"
    except (psutil.Error, OSError):
        pass
    return "an unknown process"


def log_tail(path: Path, lines: int = 40, redact: Iterable[str] = ()) -> str:
    """The last ``lines`` lines of ``path``, with every secret in ``redact`` masked."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 32768))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    tail = "\n".join(text.splitlines()[-lines:])
    for secret in redact:
        if secret:
            tail = tail.replace(secret, "***")
    return tail


class DetachedExecutor(Executor):
    """A mirakuru executor whose process outlives this Python process.

    mirakuru kills what it started when the executor is collected or Python exits; this one
    leaves the process out of that (no ``mirakuru_uuid`` marker) and hands it over with
    :meth:`detach`. Readiness is ``check()``: a real, authenticated request.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        port: int,
        check: Callable[[], bool],
        host: str = LOOPBACK,
        log: IO[bytes],
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        popen_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            list(command),
            cwd=str(cwd) if cwd else None,
            timeout=timeout,
            sleep=0.5,
            envvars=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            popen_kwargs=popen_kwargs,
        )
        self._port = port
        self._host = host
        self._check = check

    @property
    def envvars(self) -> dict[str, str]:
        env = super().envvars
        env.pop(ENV_UUID, None)
        return env

    @property
    def _popen_kwargs(self) -> dict[str, Any]:
        kwargs = super()._popen_kwargs
        # A new session (the service leads its own process group), without preexec_fn,
        # which is unsafe when several services start from threads at once.
        kwargs.pop("preexec_fn", None)
        kwargs["start_new_session"] = True
        return kwargs

    def pre_start_check(self) -> bool:
        return port_open(self._port, self._host)

    def after_start_check(self) -> bool:
        return self._check()

    def check_subprocess(self) -> bool:
        # mirakuru waits on until its timeout when the process exits with status 0.
        if self.process is not None and self.process.poll() == 0:
            raise ProcessExitedWithError(self, 0)
        return super().check_subprocess()

    def detach(self) -> PidRecord:
        """Hand the running process over: mirakuru forgets it, this module keeps reaping it."""
        proc = self.process
        if proc is None:
            raise RuntimeError("no process to detach")
        record = PidRecord.of(proc.pid)
        with _CHILDREN_LOCK:
            _CHILDREN[proc.pid] = proc
        self.process = None
        return record
