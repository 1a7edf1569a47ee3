"""The local stack against the backend versions manifest: what is installed here is what the
manifest says, so the suite tests the version the lab's images run (issue 16, part D)."""

from __future__ import annotations

import pytest

from mas_devstack import _versions
from mas_devstack._runtime import postgres_bin_default
from mas_devstack._versions import local_versions, version_drift
from mas_storage import backend_versions

SERVERS = ("postgres", "redis", "typesense", "neo4j")


@pytest.mark.host_system  # reads the versions of the servers installed here
@pytest.mark.parametrize("name", SERVERS)
def test_the_installed_server_is_the_manifests_version(name: str) -> None:
    local = local_versions()[name]
    assert local.installed == backend_versions()[name].version, local.detail


@pytest.mark.host_system  # reads the versions of the servers installed here
def test_nothing_drifts() -> None:
    assert version_drift() == []


def test_qdrant_is_embedded_and_never_counted_as_drift() -> None:
    local = local_versions()["qdrant"]
    assert local.installed is None
    assert local.detail.startswith("embedded (Qdrant Edge, qdrant-edge-py ")
    assert backend_versions()["qdrant"].source == "embedded"


def test_postgres_binaries_are_the_manifests_major() -> None:
    assert postgres_bin_default().parts[-2] == backend_versions()["postgres"].major


@pytest.mark.host_system  # reads the versions of the servers installed here
def test_a_moved_debian_package_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if Debian's security update had moved PostgreSQL on a fresh machine.
    monkeypatch.setitem(_versions._READERS, "postgres", lambda: ("15.20", "postgres --version"))
    assert version_drift() == [
        "postgres: the local stack runs 15.20 (postgres --version), the backend versions "
        f"manifest and the lab's image say {backend_versions()['postgres'].version}"
    ]
