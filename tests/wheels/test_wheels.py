"""The packages as a user installs them from an index: built wheels in a fresh venv.

``uv build --all-packages`` builds every package (sdist, then the wheel from the sdist, as an
index's users and builders get them). The wheels, not the workspace, go into a new virtual
environment, with the third-party versions of ``uv.lock`` as constraints (the same versions
the suites test). There:

* the metadata an index shows (version, license, authors, addresses, the README as the long
  description) and the files (LICENSE, py.typed, the schema in mas-storage-postgres);
* ``uv pip check``, and every module of every package imports with warnings as errors;
* the schema applies from the wheel alone, with yoyo's command line, and rolls back, in a
  scratch database of the local PostgreSQL;
* the main job's round trip (``scripts/roundtrip.py``) passes against the real local stack,
  run from outside the repository.
"""

from __future__ import annotations

import email.parser
import os
import re
import subprocess
import sys
import tarfile
import time
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))
VERSION = re.search(
    r'^__version__ = "([^"]+)"$',
    (ROOT / "packages/mas-storage/mas_storage/_version.py").read_text(encoding="utf-8"),
    re.MULTILINE,
)[1]  # type: ignore[index]
MIGRATION_FILES = sorted(p.name for p in (ROOT / "migrations").glob("*.sql"))

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command; its output, or a failure that shows it."""
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"{args[:3]} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def dist_name(package_dir: Path) -> str:
    return str(tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]["name"])


def extras_of(name: str) -> str:
    """``[a,b]``: every extra the package declares (so that every module can import)."""
    package_dir = next(p for p in PACKAGES if dist_name(p) == name)
    project = tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]
    extras = sorted(project.get("optional-dependencies", {}))
    return f"[{','.join(extras)}]" if extras else ""


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``uv build --all-packages``: the wheels and sdists by distribution name, and the time."""
    out = tmp_path_factory.mktemp("dist")
    began = time.monotonic()
    run("uv", "build", "--all-packages", "--no-progress", "--out-dir", out, cwd=ROOT)
    print(f"\nuv build --all-packages: {time.monotonic() - began:.1f} s")
    built: dict[str, Any] = {"wheels": {}, "sdists": {}}
    for package_dir in PACKAGES:
        stem = dist_name(package_dir).replace("-", "_")
        built["wheels"][dist_name(package_dir)] = out / f"{stem}-{VERSION}-py3-none-any.whl"
        built["sdists"][dist_name(package_dir)] = out / f"{stem}-{VERSION}.tar.gz"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        p.name for kind in built.values() for p in kind.values()
    )
    return built


@pytest.fixture(scope="module")
def venv(dist: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the built wheels, each with all its extras, and the locked versions
    of their dependencies; its python."""
    where = tmp_path_factory.mktemp("venv")
    constraints = where / "constraints.txt"
    constraints.write_text(
        run(
            "uv", "export", "--frozen", "--no-hashes", "--no-header", "--no-annotate",
            "--no-emit-workspace", "--all-packages", "--all-extras", "--no-default-groups",
            cwd=ROOT,
        )
    )  # fmt: skip
    began = time.monotonic()
    run("uv", "venv", "--quiet", "--python", sys.executable, where / "venv", cwd=where)
    python = where / "venv" / "bin" / "python"
    requirements = [
        f"{name}{extras_of(name)} @ {wheel.as_uri()}" for name, wheel in dist["wheels"].items()
    ]
    run(
        "uv", "pip", "install", "--quiet", "--python", python, "--constraints", constraints,
        *requirements, cwd=where,
    )  # fmt: skip
    print(f"\nfresh venv with the wheels: {time.monotonic() - began:.1f} s")
    return python


@pytest.fixture
def scratch_db(stack_admin: dict[str, Any]) -> Iterator[str]:
    """A new empty database on the local PostgreSQL, the schema owner's (the ``mas`` role has
    CREATEDB; the adapter's role in ``postgres_url`` has no DDL at all)."""
    admin_url = str(stack_admin["postgres_owner_url"])
    name = f"test_wheel_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user of the wheels: no workspace on any path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.pop("MAS_STACK_OUTPUTS", None)
    return {**env, **extra}


# -- the artifacts -------------------------------------------------------------------------


@pytest.mark.parametrize("package_dir", PACKAGES, ids=[p.name for p in PACKAGES])
def test_wheel_metadata_is_what_an_index_shows(dist: dict[str, Any], package_dir: Path) -> None:
    name = dist_name(package_dir)
    with zipfile.ZipFile(dist["wheels"][name]) as wheel:
        names = wheel.namelist()
        info = f"{name.replace('-', '_')}-{VERSION}.dist-info"
        meta = email.parser.Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        assert wheel.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    assert meta["Name"] == name
    assert meta["Version"] == VERSION
    assert meta["License-Expression"] == "MIT"
    assert meta["Author"] == "mas-memory maintainers"
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Keywords"]
    assert {u.split(",")[0] for u in meta.get_all("Project-URL", [])} == {
        "Homepage", "Repository", "Documentation", "Changelog", "Issues",
    }  # fmt: skip
    assert "Programming Language :: Python :: 3.13" in meta.get_all("Classifier", [])
    assert meta["Description-Content-Type"] == "text/markdown"
    readme = (package_dir / "README.md").read_text(encoding="utf-8")
    assert meta.get_payload().strip() == readme.strip()
    assert any(n.endswith("/py.typed") for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_the_schema_is_inside_the_postgres_wheel_and_sdist(dist: dict[str, Any]) -> None:
    """The migration files, byte for byte, in both artifacts; the repository README is not."""
    expected = {n: (ROOT / "migrations" / n).read_bytes() for n in MIGRATION_FILES}
    with zipfile.ZipFile(dist["wheels"]["mas-storage-postgres"]) as wheel:
        inside = {
            Path(n).name: wheel.read(n)
            for n in wheel.namelist()
            if n.startswith("mas_storage_postgres/migrations/")
        }
    assert inside == expected
    with tarfile.open(dist["sdists"]["mas-storage-postgres"]) as sdist:
        prefix = f"mas_storage_postgres-{VERSION}/mas_storage_postgres/migrations/"
        members = [m for m in sdist.getmembers() if m.name.startswith(prefix)]
        assert all(m.isfile() for m in members)  # real files, not the repository's link
        in_sdist = {
            Path(m.name).name: sdist.extractfile(m).read()  # type: ignore[union-attr]
            for m in members
        }
    assert in_sdist == expected


# -- the fresh venv ------------------------------------------------------------------------


def test_the_venv_holds_the_wheels_not_the_workspace(venv: Path) -> None:
    run("uv", "pip", "check", "--python", venv, cwd=venv.parent)
    where = run(
        venv, "-c",
        "import mas_storage, mas_storage_postgres, importlib.metadata as m;"
        "print(mas_storage.__file__); print(mas_storage.__version__);"
        "print(m.version('mas-storage-qdrant'))",
        cwd=venv.parent, env=user_env(),
    ).split()  # fmt: skip
    assert where[0].startswith(str(venv.parent.parent / "lib"))
    assert where[1:] == [VERSION, VERSION]
    assert str(ROOT) not in "".join(p.read_text() for p in venv.parent.parent.rglob("*.pth"))


def test_every_module_imports_with_warnings_as_errors(venv: Path) -> None:
    script = (
        "import importlib, pkgutil\n"
        "names = ['mas_storage', 'mas_storage_postgres', 'mas_storage_redis',\n"
        "         'mas_storage_qdrant', 'mas_storage_neo4j', 'mas_storage_typesense',\n"
        "         'mas_devstack']\n"
        "count = 0\n"
        "for name in names:\n"
        "    package = importlib.import_module(name)\n"
        "    for info in pkgutil.walk_packages(package.__path__, name + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "        count += 1\n"
        "print(count)\n"
    )
    count = int(run(venv, "-W", "error", "-c", script, cwd=venv.parent, env=user_env()))
    assert count >= 30


def test_the_registry_finds_every_adapter_from_the_wheels(venv: Path) -> None:
    found = run(
        venv, "-c", "import mas_storage; print(' '.join(mas_storage.available_adapters()))",
        cwd=venv.parent, env=user_env(),
    ).split()  # fmt: skip
    assert sorted(found) == ["neo4j", "postgres", "qdrant", "redis", "typesense"]


def test_the_schema_applies_and_rolls_back_from_the_wheel(venv: Path, scratch_db: str) -> None:
    """yoyo's command line, the source inside the wheel, the URL from POSTGRES_URL."""
    yoyo = venv.parent / "yoyo"
    env = user_env(POSTGRES_URL=scratch_db)
    args = ["--batch", "--database", "postgresql+mas://", "package:mas_storage_postgres:migrations"]
    run(yoyo, "apply", *args, cwd=venv.parent, env=env)
    with psycopg.connect(scratch_db) as conn:
        applied = conn.execute("SELECT migration_id FROM _yoyo_migration ORDER BY 1").fetchall()
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_name NOT LIKE '%yoyo%' ORDER BY 1"
        ).fetchall()
    ids = [n.removesuffix(".sql") for n in MIGRATION_FILES if not n.endswith(".rollback.sql")]
    assert [row[0] for row in applied] == ids
    assert {"active_context", "working_memory"} <= {row[0] for row in tables}
    run(yoyo, "rollback", "--all", *args, cwd=venv.parent, env=env)
    with psycopg.connect(scratch_db) as conn:
        left = conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relname NOT LIKE '%yoyo%'"
        ).fetchall()
    assert left == []


def test_the_main_job_round_trip_passes_from_the_wheels(
    venv: Path, stack_outputs: dict[str, Any]
) -> None:
    outputs = Path(os.environ.get("MAS_STACK_OUTPUTS") or ROOT / ".mas" / "stack-outputs.json")
    env = user_env(MAS_STACK_OUTPUTS=str(outputs), MAS_HOME=str(ROOT))
    began = time.monotonic()
    out = run(venv, ROOT / "scripts" / "roundtrip.py", cwd=venv.parent, env=env)
    print(f"\n{out}\nround trip from the wheels: {time.monotonic() - began:.1f} s")
    assert "6 of 6 round trips ok" in out
    status = run(venv.parent / "mas-devstack", "status", cwd=venv.parent, env=env)
    assert re.search(r"^postgres\s+running", status, re.MULTILINE), status
