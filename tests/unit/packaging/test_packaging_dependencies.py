"""Every third-party package a workspace package imports is one it declares.

A wheel installed from an index gets only what its metadata declares (and what those bring
along by chance). An import that works in the workspace because some other member, or a
dependency's dependency, installed it breaks for a user the day that chain changes: qdrant's
``grpc`` and ``httpx`` come with ``qdrant-client`` today, for instance. So every module a
package's code imports (``import x`` / ``from x import y``, anywhere in the file, even under
``TYPE_CHECKING`` or in a function) must map, through the installed distributions, to one of
its ``dependencies`` or ``optional-dependencies``; the standard library and the package itself
excepted.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))


def imported_modules(package_dir: Path) -> dict[str, list[str]]:
    """Top-level names of the absolute imports in a package's code: name -> files."""
    found: dict[str, list[str]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                files = found.setdefault(name.partition(".")[0], [])
                files.append(str(path.relative_to(package_dir)))
    return found


def declared(pyproject: dict[str, Any]) -> set[str]:
    """Canonical names of the dependencies and of every extra's dependencies."""
    project = pyproject["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def load(package_dir: Path) -> dict[str, Any]:
    return tomllib.loads((package_dir / "pyproject.toml").read_text(encoding="utf-8"))


@cache
def distributions_of() -> dict[str, set[str]]:
    """Top-level import name -> canonical names of the installed distributions providing it.

    The workspace members are installed editable (a path in a ``.pth`` file, no file list), so
    their import names come from their own build configuration.
    """
    found = {
        module: {canonicalize_name(d) for d in dists}
        for module, dists in packages_distributions().items()
    }
    for package_dir in PACKAGES:
        pyproject = load(package_dir)
        for module in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]:
            found[module] = {canonicalize_name(pyproject["project"]["name"])}
    return found


@pytest.mark.parametrize("package_dir", PACKAGES, ids=[p.name for p in PACKAGES])
def test_every_import_is_a_declared_dependency(package_dir: Path) -> None:
    pyproject = load(package_dir)
    own = {canonicalize_name(pyproject["project"]["name"])}
    allowed = declared(pyproject) | own
    missing: dict[str, list[str]] = {}
    for module, files in imported_modules(package_dir).items():
        if module in sys.stdlib_module_names:
            continue
        providers = distributions_of().get(module)
        if not providers:
            pytest.fail(
                f"{package_dir.name} imports {module!r} ({files[0]}), which no installed "
                "distribution provides"
            )
        if not providers & allowed:
            missing[f"{module} (from {' or '.join(sorted(providers))})"] = sorted(set(files))
    assert not missing, (
        f"{package_dir.name} imports packages its pyproject.toml does not declare: {missing}"
    )


def test_the_check_sees_imports_everywhere(tmp_path: Path) -> None:
    """The scan finds imports in functions and under TYPE_CHECKING, and skips relative ones."""
    (tmp_path / "m.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import os.path\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n    import grpc\n"
        "def f():\n    from httpx import Client\n",
        encoding="utf-8",
    )
    assert set(imported_modules(tmp_path)) == {"typing", "os", "grpc", "httpx"}
