"""Fixtures of the infra tests: the committed stacks' configs, built under Pulumi mocks."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from infra_harness import Built, build_program, stack_file_config


@pytest.fixture(scope="session")
def dev_config() -> dict[str, Any]:
    """Pulumi.dev.yaml's config plus the SSH user a lab user sets with ``pulumi config set``."""
    return {**stack_file_config("dev"), "sshUser": "labuser"}


@pytest.fixture(scope="session")
def local_config() -> dict[str, Any]:
    return stack_file_config("local")


@pytest.fixture(scope="session")
def dev_built(dev_config: dict[str, Any]) -> Built:
    return build_program(dev_config, stack="dev")


@pytest.fixture(scope="session")
def local_built(local_config: dict[str, Any]) -> Built:
    return build_program(local_config, stack="local")


@pytest.fixture(params=["dev", "local"])
def built(request: pytest.FixtureRequest) -> Built:
    """Each committed stack, built."""
    return request.getfixturevalue(f"{request.param}_built")


@pytest.fixture(scope="session")
def cluster_config() -> dict[str, Any]:
    """Pulumi.cluster.yaml's config (the cluster topology) plus the SSH user."""
    return {**stack_file_config("cluster"), "sshUser": "labuser"}


@pytest.fixture(scope="session")
def cluster_built(cluster_config: dict[str, Any]) -> Built:
    return build_program(cluster_config, stack="cluster")


@pytest.fixture
def root() -> Iterator[Path]:
    """A private root the servers' users can traverse (pytest's tmp_path is root-only): where
    the containers' commands run for real (test_infra_on_servers, test_infra_cluster_on_servers)."""
    path = Path(tempfile.mkdtemp(prefix="mas-infra-servers-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
