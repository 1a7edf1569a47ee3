"""Which servers of the stack outputs this run may kill, freeze and restart.

Tests that must own a server's process (kill -9, SIGSTOP, graceful restarts, network faults on
the simulated hosts, the local stack's own tests) run only against servers this run controls:

* **a service of this checkout's local stack** (``mas_devstack.Stack``, on loopback or on the
  simulated hosts of ``--hosts``): the outputs' keys of that backend are exactly what the stack
  writes. The session started it, or ``mas-devstack up`` was run in this checkout before
  (issue #16); either way the stack's PID files name its processes;
* **a Qdrant server the session started** from ``$MAS_QDRANT_SERVER_COMMAND``
  (:class:`QdrantServer`): the local stack runs no Qdrant server, and nothing in this
  repository builds or starts one unless that variable names one.

Every other server the outputs name is one this run did not start: the lab's, or a stack
started in another root (``scripts/test-hosts`` does exactly that for its proof run). Those
tests skip with the one-line reason of :meth:`Ownership.reason`; everything else runs against
them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from mirakuru import HTTPExecutor

__all__ = [
    "PROCESS_BACKENDS",
    "QDRANT_SERVER_COMMAND_ENV",
    "Ownership",
    "QdrantServer",
    "ownership_of",
    "qdrant_server_from_env",
]

#: The backends the local stack runs as server processes (its Qdrant is embedded).
PROCESS_BACKENDS = ("postgres", "redis", "typesense", "neo4j")
#: A command that runs a Qdrant server in the foreground, serving the outputs' ``qdrant_url``.
QDRANT_SERVER_COMMAND_ENV = "MAS_QDRANT_SERVER_COMMAND"
#: Seconds a Qdrant server may take to answer ``/readyz`` (a debug build loads slowly).
QDRANT_START_TIMEOUT = 180.0


class QdrantServer:
    """A Qdrant server process this session starts, owns and stops (by its PID).

    ``command`` (``$MAS_QDRANT_SERVER_COMMAND``, split like a shell would, run without one)
    must run the server in the foreground, listening at the outputs' ``qdrant_url``; it gets the
    outputs' API key as ``QDRANT__SERVICE__API_KEY``, the variable Qdrant reads. Readiness is
    ``GET /readyz`` answering 200. The process leads its own process group, so a wrapper script
    and the server it runs are signalled together.

    It offers what :class:`faults.StackFaults` uses of a ``Stack`` (``pid``, ``stop``,
    ``start``, ``_exclusive``), so the Qdrant server's fault tests run through the same runner
    as every other backend's.
    """

    name = "qdrant"

    def __init__(self, command: str, url: str, api_key: str | None) -> None:
        self.command = shlex.split(command)
        self.url = url.rstrip("/")
        env = {"QDRANT__SERVICE__API_KEY": api_key} if api_key else {}
        # Open for the server's whole life (it writes there), closed by down().
        self._log: IO[bytes] = tempfile.TemporaryFile(prefix="mas-test-qdrant-")  # noqa: SIM115
        self._executor = HTTPExecutor(
            self.command,
            url=f"{self.url}/readyz",
            method="GET",
            status=200,
            timeout=QDRANT_START_TIMEOUT,
            envvars=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"QdrantServer(url={self.url!r}, pid={self.pid()})"

    def up(self) -> None:
        """Start the server and wait until it is ready; refuse one that already listens."""
        from mirakuru.exceptions import AlreadyRunning

        try:
            self._executor.start()
        except AlreadyRunning:
            raise RuntimeError(
                f"{QDRANT_SERVER_COMMAND_ENV} is set, but a server already listens at "
                f"{self.url}: this run cannot own it (stop it, or unset the variable)"
            ) from None
        except Exception as exc:
            raise RuntimeError(
                f"the Qdrant server did not start: {exc}\n{self.log_tail()}"
            ) from exc

    def down(self) -> None:
        """Stop the server (SIGTERM to its group, then SIGKILL after 10 s)."""
        with self._lock:
            self._executor.stop()
        self._log.close()

    def log_tail(self, size: int = 4000) -> str:
        self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, self._log.tell() - size))
        return self._log.read().decode("utf-8", "replace")

    # -- the part of Stack that StackFaults uses --------------------------------------------

    def pid(self, name: str = "qdrant") -> int | None:
        process = self._executor.process
        return process.pid if process is not None and process.poll() is None else None

    def stop(self, name: str = "qdrant", *, kill: bool = False) -> bool:
        """Stop (or SIGKILL) the server's process group; False when it was not running."""
        with self._lock:
            if self._executor.process is None:
                return False
            if kill:
                self._executor.kill()
            else:
                self._executor.stop()
            return True

    def start(self, name: str = "qdrant") -> bool:
        """Start the server again on the same storage; False when it already runs."""
        with self._lock:
            if self.pid() is not None:
                return False
            self._executor._clear_process()  # a SIGKILLed process, already reaped
            self.up()
            return True

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._lock:
            yield


@dataclass(frozen=True)
class Ownership:
    """The servers of the outputs whose processes this run controls.

    ``services``: the local stack's services the outputs name (their keys are exactly what the
    stack writes); ``qdrant_server``: the Qdrant server the session started, if any.
    """

    services: frozenset[str]
    qdrant_server: QdrantServer | None

    def owns(self, backend: str) -> bool:
        if backend == "qdrant":
            return self.qdrant_server is not None
        return backend in self.services

    def reason(self, backend: str, outputs: Mapping[str, Any]) -> str | None:
        """Why this run may not signal ``backend``'s server (one line), or None."""
        if self.owns(backend):
            return None
        if backend == "qdrant":
            if not outputs.get("qdrant_url"):
                return (
                    "needs a Qdrant server's process: the outputs name no Qdrant server "
                    "(no qdrant_url)"
                )
            return (
                "needs the Qdrant server's process: the outputs' qdrant_url is a server this "
                f"run did not start (the run starts one from ${QDRANT_SERVER_COMMAND_ENV})"
            )
        return (
            f"needs control of the {backend} server (its process, its host's network): the "
            f"outputs point at a {backend} this run did not start (not this checkout's local stack)"
        )

    @property
    def local_stack_reason(self) -> str | None:
        """Why the local stack's own tests do not apply (one line), or None."""
        if self.services:
            return None
        return (
            "the local stack's own tests: the outputs point at servers this run did not start "
            "(none is this checkout's local stack)"
        )


def ownership_of(
    outputs: Mapping[str, Any], stack: Any, qdrant_server: QdrantServer | None
) -> Ownership:
    """What this run owns of ``outputs``, given this checkout's local ``stack``.

    A backend's server belongs to the local stack when every outputs key of that backend
    (``<backend>_...``) is exactly what the stack writes. A stack never started in this
    checkout (no secrets file) owns nothing.
    """
    services: set[str] = set()
    if stack.layout.secrets_path.is_file():
        written = stack.outputs()
        for backend in PROCESS_BACKENDS:
            keys = [k for k in written if k.startswith(f"{backend}_") and written[k] is not None]
            if keys and all(outputs.get(k) == written[k] for k in keys):
                services.add(backend)
    return Ownership(frozenset(services), qdrant_server)


def qdrant_server_from_env(outputs: Mapping[str, Any]) -> QdrantServer | None:
    """The :class:`QdrantServer` that ``$MAS_QDRANT_SERVER_COMMAND`` asks for, or None."""
    command = os.environ.get(QDRANT_SERVER_COMMAND_ENV, "").strip()
    if not command:
        return None
    url = outputs.get("qdrant_url")
    if not url:
        raise RuntimeError(
            f"{QDRANT_SERVER_COMMAND_ENV} is set, but the outputs name no qdrant_url to serve"
        )
    return QdrantServer(command, str(url), outputs.get("qdrant_api_key"))
