"""The packages' metadata, as an index will show it: one version, the same license, authors and
addresses everywhere, a real README as the long description, the schema inside the wheel.

What the built artifacts hold is checked by ``tests/wheels`` (CI); this checks the sources.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version as installed_version
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import mas_storage

ROOT = Path(__file__).resolve().parents[3]
VERSION_FILE = ROOT / "packages" / "mas-storage" / "mas_storage" / "_version.py"
PACKAGES = sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))
IDS = [p.name for p in PACKAGES]
NAMES = {p.name for p in PACKAGES}
#: Markdown links and images whose target is neither absolute nor an anchor: broken on an index.
RELATIVE_LINK = re.compile(r"\]\((?!https?://|#|mailto:)([^)]+)\)")


def project(package_dir: Path) -> dict[str, Any]:
    return tomllib.loads((package_dir / "pyproject.toml").read_text(encoding="utf-8"))


def the_version() -> str:
    found = re.search(r'^__version__ = "([^"]+)"$', VERSION_FILE.read_text(), re.MULTILINE)
    assert found, f"no __version__ in {VERSION_FILE}"
    return found.group(1)


def test_the_version_is_written_once() -> None:
    written = the_version()
    assert str(Version(written)) == written  # a canonical PEP 440 version
    assert mas_storage.__version__ == written
    hits = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "packages").rglob("*.py")
        if re.search(r"^__version__ = ", path.read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert hits == [str(VERSION_FILE.relative_to(ROOT))]


@pytest.mark.parametrize("package_dir", PACKAGES, ids=IDS)
def test_every_package_reads_the_one_version(package_dir: Path) -> None:
    data = project(package_dir)
    assert "version" not in data["project"]
    assert data["project"]["dynamic"] == ["version"]
    assert (package_dir / data["tool"]["hatch"]["version"]["path"]).resolve() == VERSION_FILE
    assert installed_version(data["project"]["name"]) == the_version()  # the synced metadata


@pytest.mark.parametrize("package_dir", PACKAGES, ids=IDS)
def test_siblings_are_required_from_this_release_line(package_dir: Path) -> None:
    """A package requires the workspace packages it uses from its own minor release line
    (``~=X.Y.0``, or a higher floor within it): never an older or a newer line."""
    data = project(package_dir)["project"]
    requirements = list(data.get("dependencies", []))
    for extra in data.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    current = Version(the_version())
    next_line = Version(f"{current.major}.{current.minor + 1}.0")
    siblings = [Requirement(r) for r in requirements if Requirement(r).name in NAMES]
    for requirement in siblings:
        spec = requirement.specifier
        assert spec.contains(current), f"{requirement} refuses this release, {current}"
        assert not spec.contains(next_line), f"{requirement} admits the next line, {next_line}"
        if current.minor:
            older = Version(f"{current.major}.{current.minor - 1}.0")
            assert not spec.contains(older), f"{requirement} admits an older line, {older}"


def test_every_package_has_the_same_license_authors_and_addresses() -> None:
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License\n")
    seen: dict[str, set[str]] = {"authors": set(), "repository": set(), "requires": set()}
    for package_dir in PACKAGES:
        data = project(package_dir)["project"]
        assert data["license"] == "MIT"
        assert data["license-files"] == ["LICENSE"]
        # A copy, not a link: an sdist must not hold a link out of itself (installers refuse it).
        assert not (package_dir / "LICENSE").is_symlink()
        assert (package_dir / "LICENSE").read_text(encoding="utf-8") == license_text
        seen["authors"].add(repr(data["authors"]))
        seen["requires"].add(data["requires-python"])
        urls = data["urls"]
        assert set(urls) == {"Homepage", "Repository", "Documentation", "Changelog", "Issues"}
        assert all(url.startswith("https://") for url in urls.values())
        assert urls["Homepage"].endswith(f"/packages/{package_dir.name}")
        seen["repository"].add(urls["Repository"])
        assert data["keywords"], package_dir.name
        classifiers = set(data["classifiers"])
        assert {
            "Programming Language :: Python :: 3.11",
            "Programming Language :: Python :: 3.13",
            "Typing :: Typed",
        } <= classifiers
        assert not any(c.startswith("License ::") for c in classifiers)  # the SPDX expression
        for module in project(package_dir)["tool"]["hatch"]["build"]["targets"]["wheel"][
            "packages"
        ]:
            assert (package_dir / module / "py.typed").is_file()
    assert all(len(values) == 1 for values in seen.values()), seen


def test_the_changelog_has_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{the_version()}]" in changelog


@pytest.mark.parametrize("package_dir", PACKAGES, ids=IDS)
def test_the_readme_is_a_real_long_description(package_dir: Path) -> None:
    data = project(package_dir)["project"]
    assert data["readme"] == "README.md"
    text = (package_dir / "README.md").read_text(encoding="utf-8")
    assert text.startswith(f"# {data['name']}\n")
    assert len(text.splitlines()) >= 30, "a README of a few lines is not a description"
    assert RELATIVE_LINK.findall(text) == [], "relative links break on an index"


def test_the_wheel_carries_the_repository_migrations() -> None:
    """mas_storage_postgres/migrations holds exactly the repository's migration files."""
    packaged = files("mas_storage_postgres") / "migrations"
    repository = ROOT / "migrations"
    inside = {p.name: p.read_bytes() for p in packaged.iterdir() if p.name.endswith(".sql")}
    outside = {p.name: p.read_bytes() for p in repository.glob("*.sql")}
    assert inside == outside
    assert len(outside) >= 4  # two migrations, each with its rollback
