"""The Pulumi language host's first step, run for real: ``uv export --package <name> --locked``.

Pulumi CLIs from v3.270 on, with ``runtime.options.toolchain: uv``, look upward from the project
file (``Pulumi.yaml``, and ``PulumiPolicy.yaml`` for the policy pack) for a ``pyproject.toml``
with a ``[project]`` name and export that package's locked requirements to find the program's
packages and provider plugins. Without a name, ``pulumi preview`` stops at once with
``failed to discover package requirements: missing project name in <repo>/pyproject.toml``
(issue 16). These tests do the same lookup and run the same export.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from infra_harness import INFRA, ROOT

#: Every package the program and the policy pack import, with a provider plugin or not.
PROGRAM_PACKAGES = ("pulumi", "pulumi-docker", "pulumi-random", "pulumi-tls", "pulumi-policy")
PROJECT_FILES = (ROOT / "Pulumi.yaml", INFRA / "policy" / "PulumiPolicy.yaml")


def _nearest_pyproject(start: Path) -> Path:
    """The first ``pyproject.toml`` from ``start`` upward, as the language host searches."""
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    raise AssertionError(f"no pyproject.toml above {start}")


@pytest.mark.parametrize("project_file", PROJECT_FILES, ids=lambda p: p.name)
def test_project_file_uses_the_uv_toolchain(project_file: Path) -> None:
    runtime = yaml.safe_load(project_file.read_text(encoding="utf-8"))["runtime"]
    assert runtime["name"] == "python"
    assert runtime["options"]["toolchain"] == "uv"


@pytest.mark.parametrize("project_file", PROJECT_FILES, ids=lambda p: p.name)
def test_nearest_pyproject_names_a_project(project_file: Path) -> None:
    pyproject = _nearest_pyproject(project_file.parent)
    assert pyproject == ROOT / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project")
    assert isinstance(project, dict), f"{pyproject} has no [project] table"
    assert project.get("name"), f"missing project name in {pyproject}"


@pytest.mark.parametrize("project_file", PROJECT_FILES, ids=lambda p: p.name)
def test_uv_export_of_the_project_is_locked_and_lists_the_program(project_file: Path) -> None:
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH (scripts/bootstrap installs it)"
    pyproject = _nearest_pyproject(project_file.parent)
    name = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("name")
    assert name, f"missing project name in {pyproject}: the language host stops here"
    result = subprocess.run(
        [uv, "export", "--package", name, "--locked", "--no-hashes", "--no-header"],
        cwd=project_file.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    pinned = {
        line.split("==", 1)[0]: line.split("==", 1)[1].split(" ", 1)[0]
        for line in result.stdout.splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    }
    for package in PROGRAM_PACKAGES:
        assert package in pinned, f"{package} is not among {name}'s locked requirements"
    # The very versions the workspace's virtualenv runs (uv.lock), not merely some version.
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    locked = {pkg["name"]: pkg["version"] for pkg in lock["package"] if "version" in pkg}
    assert {p: pinned[p] for p in PROGRAM_PACKAGES} == {p: locked[p] for p in PROGRAM_PACKAGES}
