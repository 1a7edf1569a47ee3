"""No password or API key of the stack outputs in logs, errors, reprs or metrics (issue #11).

One module-scoped run drives all five adapters through their normal operations and through
the failure paths that carry credentials, with every logger at DEBUG (the root, mas_storage,
the adapters, neo4j, httpx, httpcore, redis, psycopg, qdrant_client...), and collects:

* every log record (message, arguments, traceback), scanned by the session's sweep
  (:mod:`secretwatch`; this module looks at its window of it);
* every exception raised: ``str`` and ``repr``, and those of its chained causes and ``.orig``;
* ``repr``/``str`` of every adapter (connected, disconnected, failed), of the driver objects
  the adapters expose, and of every object an adapter holds (config objects, clients,
  collectors); plain values (``config``, URL strings, key tuples) are the credentials the
  adapter needs to connect and are left out;
* every metrics export (dict, json, prometheus, csv, markdown), which records error messages.

The failure paths: the real password with a wrong user, the real password on a closed port
(connection refused), the real password with one character added (a wrong password that
contains the real one), a wrong API key, and bad queries. The tests then assert on parts of
what was collected. The secrets searched for are the stack's (``secretwatch.stack_secrets``)
plus the wrong credentials made from them, plus a stand-in Qdrant API key for the server-mode
path when the outputs have none (the local stack runs Qdrant embedded); those are added to the
session's sweep too, so they must not appear anywhere for the rest of the run either. Every
error and adapter collected here also goes through the sweep.

The last tests check the checkers: a private watch nested in the session's catches a planted
secret, and a whole pytest run whose tests leak one ends red (a child process, with the suite's
own conftest and a made-up stack).
"""

from __future__ import annotations

import logging
import os
import secrets as token
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hostile import LoopThread
from otel_sinks import Sinks
from qdrant_modes import adapter_config, modes_of
from secretwatch import (
    SecretSweep,
    SecretWatch,
    WatchWindow,
    active_sweep,
    adapter_texts,
    exception_texts,
    find_secrets,
    private_key_secrets,
    stack_secrets,
)
from typesense_scoped import scoped_collection

from mas_storage import (
    StorageAdapter,
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageQueryError,
)
from mas_storage_neo4j import Neo4jAdapter
from mas_storage_postgres import PostgresAdapter
from mas_storage_qdrant import QdrantAdapter
from mas_storage_redis import RedisAdapter
from mas_storage_typesense import TypesenseAdapter

RUN = f"test-secrets-{uuid.uuid4().hex[:8]}"
METRIC_FORMATS = ("dict", "json", "prometheus", "csv", "markdown")
HERE = Path(__file__).resolve().parent


def _closed_port() -> int:
    """A loopback port in 61000-61999 nothing listens on (connections are refused)."""
    for port in range(61990, 61000, -1):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no closed port in 61000-61999")


def _with(url: str, *, user: str | None = None, password: str | None = None, port: int = 0) -> str:
    """``url`` with its user, password or port replaced."""
    parts = urlsplit(url)
    user = parts.username if user is None else user
    password = parts.password if password is None else password
    auth = f"{user or ''}:{password}@" if password else (f"{user}@" if user else "")
    return urlunsplit(parts._replace(netloc=f"{auth}{parts.hostname}:{port or parts.port}"))


@dataclass(repr=False)  # a failing test prints its fixtures' reprs: no secrets list in it
class Scan:
    """What one run collected: texts by origin, errors by scenario, and the log window."""

    secrets: list[str]
    watch: WatchWindow
    texts: list[tuple[str, str]] = field(default_factory=list)
    errors: dict[str, BaseException] = field(default_factory=dict)

    async def expect(
        self, where: str, call: Awaitable[Any], cls: type[StorageError] = StorageError
    ) -> None:
        """Await ``call``, which must raise ``cls``; keep every text of the error."""
        try:
            await call
        except BaseException as exc:
            self.errors[where] = exc
            self.texts += [(f"error of {where}", text) for text in exception_texts(exc)]
            active_sweep().exception(exc, where)
            if not isinstance(exc, cls):
                raise AssertionError(f"{where}: expected {cls.__name__}, got {exc!r}") from exc
            return
        raise AssertionError(f"{where}: expected {cls.__name__}, nothing was raised")

    def adapter(self, where: str, adapter: StorageAdapter) -> None:
        """Keep the texts of ``secretwatch.adapter_texts``: ``repr``/``str`` of the adapter and
        of the objects it holds (in this state: connected, disconnected or failed)."""
        self.texts += [(f"{what} of {where}", text) for what, text in adapter_texts(adapter)]
        active_sweep().adapter(adapter, where)

    async def metrics(self, where: str, adapter: StorageAdapter) -> None:
        for fmt in METRIC_FORMATS:
            self.texts.append((f"{fmt} metrics of {where}", str(await adapter.export_metrics(fmt))))

    def leaks(self, prefix: str) -> list[str]:
        return [
            f"{origin}: {leak}"
            for origin, text in self.texts
            if origin.startswith(prefix)
            for leak in find_secrets([text], self.secrets)
        ]


# -- the scenarios, one per backend --------------------------------------------------------------


async def _postgres(o: dict[str, Any], scan: Scan, closed: int) -> None:
    url = o["postgres_url"]
    password = urlsplit(url).password
    async with PostgresAdapter({"url": url, "pool_size": 2, "min_size": 1}) as pg:
        rid = await pg.store({"session_id": RUN, "turn_id": 1, "content": "hello"})
        assert await pg.retrieve(rid) is not None
        await scan.expect("postgres bad sort", pg.search({"sort": "id; DROP TABLE x"}))
        await scan.expect(
            "postgres NUL", pg.store({"session_id": RUN, "turn_id": 2, "content": "\x00"})
        )
        await scan.expect(
            "postgres duplicate turn",
            pg.store({"session_id": RUN, "turn_id": 1, "content": "again"}),
            StorageDataError,
        )
        assert await pg.delete(rid)
        scan.adapter("postgres connected", pg)
        await scan.metrics("postgres", pg)
    scan.adapter("postgres disconnected", pg)
    for where, bad in (
        ("postgres wrong user", _with(url, user="nobody")),
        ("postgres closed port", _with(url, port=closed)),
        ("postgres wrong password", _with(url, password=f"{password}x")),
    ):
        adapter = PostgresAdapter({"url": bad, "timeout": 5})
        await scan.expect(where, adapter.connect(), StorageConnectionError)
        await scan.expect(f"{where} (store)", adapter.store({}), StorageConnectionError)
        scan.adapter(where, adapter)
        await scan.metrics(where, adapter)
        await adapter.disconnect()


async def _redis(o: dict[str, Any], scan: Scan, closed: int) -> None:
    url = o["redis_url"]
    password = urlsplit(url).password
    async with RedisAdapter({"url": url}) as rd:
        await rd.store({"session_id": RUN, "turn_id": 1, "content": "hello"})
        assert await rd.clear_session(RUN)
        await scan.expect("redis bad id", rd.retrieve("session:x:turns:nope"), StorageDataError)
        scan.adapter("redis connected", rd)
        await scan.metrics("redis", rd)
    for where, config in (
        ("redis wrong user", {"url": _with(url, user="nobody")}),
        ("redis closed port", {"url": _with(url, port=closed), "retries": 0}),
        ("redis wrong password", {"url": _with(url, password=f"{password}x")}),
        ("redis password key", {"url": _with(url, port=closed), "password": password}),
    ):
        adapter = RedisAdapter(config)
        await scan.expect(where, adapter.connect(), StorageConnectionError)
        scan.adapter(where, adapter)
        await scan.metrics(where, adapter)
        await adapter.disconnect()


async def _neo4j(o: dict[str, Any], scan: Scan, closed: int) -> None:
    url, password = o["neo4j_url"], o["neo4j_password"]
    user = o.get("neo4j_user") or "neo4j"
    async with Neo4jAdapter({"url": url, "user": user, "password": password}) as nj:
        await nj.search({"cypher": "RETURN $x AS x", "params": {"x": 1}})
        await scan.expect("neo4j bad cypher", nj.search({"cypher": "MATCH (n"}), StorageQueryError)
        await scan.expect(
            "neo4j bad label", nj.store({"type": "entity", "label": "a`b", "properties": {}})
        )
        scan.adapter("neo4j connected", nj)
        await scan.metrics("neo4j", nj)
    for where, config in (
        ("neo4j wrong user", {"url": url, "user": "nobody", "password": password}),
        ("neo4j wrong password", {"url": url, "user": user, "password": f"{password}x"}),
        (
            "neo4j closed port",
            {"url": _with(url, port=closed), "user": user, "password": password},
        ),
        ("neo4j password in url", {"url": _with(url, user=user, password=password, port=closed)}),
    ):
        adapter = Neo4jAdapter({**config, "connection_timeout": 3})
        await scan.expect(where, adapter.connect(), StorageConnectionError)
        scan.adapter(where, adapter)
        await scan.metrics(where, adapter)
        await adapter.disconnect()


async def _typesense(o: dict[str, Any], scan: Scan, closed: int) -> None:
    url = o["typesense_url"]
    collection = RUN.replace("-", "_")
    # The adapter on a key scoped to its collection (the admin makes both and drops them);
    # the stack's own scoped key is in the outputs, and so in the sweep's secrets, already.
    async with scoped_collection(o, collection) as key:
        scan.secrets.append(key)
        active_sweep().add_secrets([key])
        config = {"url": url, "api_key": key, "collection_name": collection}
        async with TypesenseAdapter(config) as ts:
            doc_id = await ts.store(
                {"content": "hello", "session_id": RUN, "fact_type": "f", "confidence": 0.5}
            )
            assert await ts.retrieve(doc_id) is not None
            await scan.expect("typesense bad filter", ts.search({"q": "*", "filter_by": "((("}))
            await scan.expect(
                "typesense backtick", ts.search({"q": "*", "filters": {"session_id": "`"}})
            )
            await scan.expect(
                "typesense scoped key drops nothing", ts.drop_collection(), StorageConnectionError
            )
            scan.adapter("typesense connected", ts)
            await scan.metrics("typesense", ts)
    key = o["typesense_api_key"]
    for where, config in (
        ("typesense wrong key", {"url": url, "api_key": f"{key}x"}),
        ("typesense closed port", {"url": _with(url, port=closed), "api_key": key, "retries": 0}),
    ):
        adapter = TypesenseAdapter({**config, "collection_name": collection})
        await scan.expect(where, adapter.connect(), StorageConnectionError)
        scan.adapter(where, adapter)
        await scan.metrics(where, adapter)
        await adapter.disconnect()


async def _qdrant(o: dict[str, Any], scan: Scan, closed: int, path: str, key: str) -> None:
    """Each mode the outputs name (embedded on a private path; the outputs' server with its
    key, then with a wrong one), then a closed port with the key."""
    for mode in modes_of(o):
        config = adapter_config(
            o, mode, path=path, collection_name=f"{RUN}-qdrant".replace("-", "_"), vector_size=4
        )
        async with QdrantAdapter(config) as qd:
            pid = await qd.store({"vector": [0.1, 0.2, 0.3, 0.4], "content": "hello"})
            assert await qd.retrieve(pid) is not None
            await scan.expect(
                f"qdrant {mode} NaN", qd.store({"vector": [float("nan")] * 4}), StorageDataError
            )
            scan.adapter(f"qdrant {mode}", qd)
            await scan.metrics(f"qdrant {mode}", qd)
            await qd.drop_collection()
        if mode == "server" and o.get("qdrant_api_key"):
            wrong = QdrantAdapter({**config, "api_key": f"{key}x"})
            await scan.expect("qdrant wrong key", wrong.connect(), StorageConnectionError)
            scan.adapter("qdrant wrong key", wrong)
            await scan.metrics("qdrant wrong key", wrong)
            await wrong.disconnect()
    adapter = QdrantAdapter(
        {"url": f"http://127.0.0.1:{closed}", "api_key": key, "timeout": 3, "vector_size": 4}
    )
    await scan.expect("qdrant closed port", adapter.connect(), StorageConnectionError)
    scan.adapter("qdrant closed port", adapter)
    await scan.metrics("qdrant closed port", adapter)
    await adapter.disconnect()


@pytest.fixture(scope="module")
def scan(stack_outputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    qdrant_key = stack_outputs.get("qdrant_api_key") or f"qdrant-{token.token_hex(16)}"
    found = stack_secrets({**stack_outputs, "qdrant_api_key": qdrant_key})
    wrong = [f"{secret}x" for secret in found]  # the wrong passwords made from real ones
    sweep = active_sweep()
    sweep.add_secrets([*found, *wrong])
    result = Scan([*found, *wrong], sweep.watch.window())
    closed = _closed_port()
    path = str(tmp_path_factory.mktemp("qdrant-secrets"))
    loop = LoopThread("secrets")
    try:
        loop.run(_postgres(stack_outputs, result, closed))
        loop.run(_redis(stack_outputs, result, closed))
        loop.run(_neo4j(stack_outputs, result, closed))
        loop.run(_typesense(stack_outputs, result, closed))
        loop.run(_qdrant(stack_outputs, result, closed, path, qdrant_key))
        yield result
    finally:
        loop.close()


# -- the assertions ------------------------------------------------------------------------------


def test_drivers_logged_at_debug(scan: Scan) -> None:
    """The watch really saw DEBUG traffic of the drivers (else the log check proves nothing).

    Typesense's requests go through aiohttp, which logs no request lines (its loggers are
    watched all the same); httpx and httpcore still log for Qdrant's server mode and the
    tests' own raw clients."""
    seen = scan.watch.by_logger
    for name in ("mas_storage", "neo4j", "httpcore", "psycopg", "mas_storage_typesense"):
        assert seen[name] > 0, f"no record of {name!r} at DEBUG: {dict(seen)}"


def test_no_secret_in_any_log_record(scan: Scan) -> None:
    scan.watch.assert_clean()


def test_every_failure_path_raised_a_storage_error(scan: Scan) -> None:
    """Each scenario raised its StorageError (checked as it ran), and no raw driver error."""
    assert len(scan.errors) >= 20
    for where, exc in scan.errors.items():
        assert isinstance(exc, StorageError), f"{where}: {exc!r}"


def test_no_secret_in_errors_or_their_causes(scan: Scan) -> None:
    leaks = scan.leaks("error of")
    assert not leaks, "\n".join(leaks)


def test_no_secret_in_reprs(scan: Scan) -> None:
    leaks = scan.leaks("repr of") + scan.leaks("str of")
    assert not leaks, "\n".join(leaks)


def test_no_secret_in_metrics_exports(scan: Scan) -> None:
    leaks = [leak for fmt in METRIC_FORMATS for leak in scan.leaks(f"{fmt} metrics")]
    assert not leaks, "\n".join(leaks)


def test_the_checks_catch_a_leak() -> None:
    """The mechanism can fail: a secret in a DEBUG record, in a chained cause or in a repr is
    found. The secret is made up, and the watch private, nested in the session's: the session's
    watch scans the same record but does not know this secret, so the run stays green."""
    secret = f"made-up-{token.token_hex(12)}"
    session = active_sweep().watch
    before = session.records
    watch = SecretWatch([secret])
    with watch.watching():
        logging.getLogger("neo4j.io").debug("C: HELLO %r", {"credentials": secret})
    assert watch.leak_count == 1 and secret not in watch.leaks[0]
    assert session.records > before  # both watches scanned the record
    assert logging.getLogger("neo4j").level == logging.DEBUG  # still the session's level
    cause = OSError(f"refused for :{secret}@host")
    err = StorageConnectionError("masked", orig=ValueError("wrapped"))
    err.__cause__ = cause
    assert find_secrets(exception_texts(err), [secret])
    assert find_secrets([repr({"url": f"redis://:{secret}@h"})], [secret])


def test_the_sweep_knows_the_private_keys(stack_outputs: dict[str, Any]) -> None:
    """The session's sweep searches for the TLS private keys too (the CA's and every
    server's), and a key logged as a driver might (a repr of its PEM, newlines escaped) is
    caught by a watch that holds the same key secrets; the key is a copy made up here, so the
    session stays green."""
    from mas_devstack import Stack

    files = Stack().private_key_files()
    if stack_outputs.get("tls_ca") is None:
        pytest.skip("the stack runs without TLS: it has no private keys")
    assert files[0].name == "ca-key.pem" and len(files) >= 5, files
    session = set(active_sweep().secrets)
    assert set(private_key_secrets(files)) <= session  # every key line is a session secret
    made_up = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp_key = HERE / f".made-up-{token.token_hex(6)}-key.pem"
    try:
        tmp_key.write_bytes(made_up)
        watch = SecretWatch(private_key_secrets([tmp_key]))
    finally:
        tmp_key.unlink()
    with watch.watching():
        logging.getLogger("neo4j.io").debug("loaded %r", made_up.decode())
    assert watch.leak_count == 1


#: A made-up stack for the child run below: its password, API key and the tests that leak them.
CHILD_CONFTEST = """
import importlib.util
import sys

import pytest

sys.path[:0] = [{here!r}, {tests!r}]
from secretwatch import MaskedOutputs

_spec = importlib.util.spec_from_file_location("reliability_conftest", {conftest!r})
suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(suite)
secret_sweep = suite.secret_sweep
pytest_runtest_makereport = suite.pytest_runtest_makereport
pytest_terminal_summary = suite.pytest_terminal_summary


@pytest.fixture(scope="session")
def stack_outputs():
    return MaskedOutputs(
        postgres_url="postgresql://mas:{password}@127.0.0.1:1/db", typesense_api_key="{key}"
    )


@pytest.fixture(scope="session")
def stack_admin():
    return MaskedOutputs(typesense_admin_api_key="{admin}")
"""
CHILD_TESTS = """
import logging

from mas_storage import StorageAdapter


class Leaky(StorageAdapter):
    kind = "leaky"

    def __repr__(self):
        return "<Leaky key={key}>"

    async def connect(self): ...
    async def disconnect(self): ...
    async def store(self, data): ...
    async def retrieve(self, id): ...
    async def search(self, query): ...
    async def delete(self, id): ...


def test_a_driver_logs_the_password_at_debug():
    logging.getLogger("psycopg.pool").debug("connecting to postgresql://mas:{password}@db")


def test_an_adapter_repr_shows_the_key():
    Leaky({{}})


def test_a_driver_logs_the_admin_key():
    logging.getLogger("httpx").debug("HTTP Request: X-TYPESENSE-API-KEY: {admin}")


def test_a_library_logs_the_stacks_ca_key():
    from pathlib import Path

    pem = (Path.cwd() / ".mas" / "tls" / "ca-key.pem").read_text()
    logging.getLogger("mas_storage.tls").debug("loaded %r", pem)


def test_clean():
    logging.getLogger("mas_storage").debug("nothing to see")
"""


async def test_the_sweep_finds_a_secret_in_a_span_or_a_metric_attribute() -> None:
    """The session's sweep scans mas_storage's spans (this module's operations made some), and
    its span scanner catches a planted secret, in private sinks and a private sweep."""
    session = active_sweep()
    assert session.spans > 0, "the suite's adapter operations are spans the sweep scanned"
    planted = "planted-" + token.token_hex(8)
    sinks = Sinks()
    try:
        span = sinks.tracer_provider.get_tracer("test").start_span("store")
        span.set_attribute("db.collection.name", f"c-{planted}")
        span.end()
        sinks.meter_provider.get_meter("test").create_histogram("h").record(1, {"k": planted})
        private = SecretSweep([planted])
        leaks = private.telemetry(sinks)
    finally:
        sinks.shutdown()
    assert private.spans == 1 and private.metric_attributes == 1
    assert len(leaks) == 2 and all(planted not in leak for leak in leaks)  # masked excerpts
    assert private.leak_count == 2


def test_the_sweep_fails_a_run_that_leaks(tmp_path: Path) -> None:
    """A pytest run under this suite's conftest, with tests that pass but leak a secret (a
    DEBUG record, an adapter repr) of the stack outputs, of the admin outputs, or a line of
    the stack's CA private key, ends red: an error at the session's end naming every leak
    (secrets masked), exit status 1, and the summary line counts them. The child's stack is
    made up: its root is ``tmp_path``, whose ``.mas/tls/ca-key.pem`` is a key made here."""
    password, key = f"pw-{token.token_hex(12)}", f"key-{token.token_hex(12)}"
    admin = f"admin-{token.token_hex(12)}"
    fill = {"password": password, "key": key, "admin": admin}
    ca_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / ".mas" / "tls").mkdir(parents=True)
    (tmp_path / ".mas" / "tls" / "ca-key.pem").write_bytes(ca_key)
    key_lines = private_key_secrets([tmp_path / ".mas" / "tls" / "ca-key.pem"])
    assert key_lines  # what the child's sweep must find
    conftest = HERE / "conftest.py"
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(CHILD_CONFTEST).format(
            here=str(HERE), tests=str(HERE.parent), conftest=str(conftest), **fill
        )
    )
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent(CHILD_TESTS).format(**fill))
    env = {k: v for k, v in os.environ.items() if k not in ("MAS_HOME", "MAS_STACK_ADMIN")}
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = child.stdout + child.stderr
    assert child.returncode == 1, out
    assert "5 passed, 1 error" in out, out
    assert "ERROR at teardown of test_clean" in out, out
    assert "4 secret leak(s)" in out, out
    assert "[test_leaky.py::test_a_driver_logs_the_password_at_debug] log record: psycopg" in out
    assert "[test_leaky.py::test_an_adapter_repr_shows_the_key] repr of Leaky" in out, out
    assert "[test_leaky.py::test_a_driver_logs_the_admin_key] log record: httpx" in out, out
    assert "[test_leaky.py::test_a_library_logs_the_stacks_ca_key] log record: mas_storage" in out
    assert "leaks: 4" in out, out
    shown = [s for s in (password, key, admin, *key_lines) if s in out]
    assert not shown, "the report printed a secret it found"


def test_redact_is_linear_on_huge_input() -> None:
    """Every error message goes through ``redact()``, and messages quote bad input, so a huge
    id or field must not stall the caller (and its event loop) for minutes.

    Run in a child process with a generous bound: linear work takes milliseconds for these
    300 kB messages, the quadratic one over a minute each.
    """
    code = (
        "from mas_storage import redact\n"
        "redact('x ' + 'a' * 300_000, ['0123456789abcdef'])\n"
        "redact('a://' * 75_000)\n"
    )
    try:
        subprocess.run([sys.executable, "-c", code], check=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("redact() did not finish a 300 kB message within 10 s")
