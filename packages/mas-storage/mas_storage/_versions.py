"""The backend versions manifest: the server versions every suite tests and the lab runs.

One file, ``backend-versions.toml`` in this package, is the only place a backend version is
written. The local stack (``mas-devstack``) reads it to choose what it runs and to warn when what
it runs drifts; the Pulumi program (``infra/``) takes its default lab images from it. Keeping it in
the core means both read the same bytes, wherever the workspace is installed.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["MANIFEST_NAME", "BackendVersion", "backend_versions"]

MANIFEST_NAME = "backend-versions.toml"
#: Every backend of mas-memory, in the manifest's order.
_BACKENDS = ("postgres", "redis", "typesense", "neo4j", "qdrant")
_LOCAL = re.compile(
    r"^(debian|pypi|maven|embedded):([A-Za-z0-9][A-Za-z0-9_.:-]*?)(?:==([0-9][^\s]*))?$"
)

LocalSource = Literal["debian", "pypi", "maven", "embedded"]


class BackendVersion(BaseModel):
    """One backend's line of the manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str = Field(
        pattern=r"^[0-9]+(\.[0-9]+){1,2}$",
        description="what the running server reports; every suite runs against exactly this",
    )
    image: str = Field(description="the lab's default image: an official image of `version`")
    local: str = Field(
        description="where the local stack gets it: debian:, pypi:, maven:, embedded:"
    )

    @model_validator(mode="after")
    def _consistent(self) -> BackendVersion:
        if not _LOCAL.match(self.local):
            raise ValueError(
                f"local {self.local!r} must be debian:<package>, pypi:<dist>==<version>, "
                "maven:<group>:<artifact> or embedded:<dist>"
            )
        if self.source == "pypi" and self.package_version is None:
            raise ValueError(f"local {self.local!r} must pin the distribution (==<version>)")
        tag = self.image_tag
        if tag not in (self.version, f"v{self.version}") and not tag.startswith(f"{self.version}-"):
            raise ValueError(
                f"image {self.image!r} is not of version {self.version}: its tag must be "
                f"'{self.version}', 'v{self.version}' or start with '{self.version}-'"
            )
        return self

    @property
    def source(self) -> LocalSource:
        """How the local stack gets it: ``debian``, ``pypi``, ``maven`` or ``embedded``."""
        return cast(LocalSource, self.local.split(":", 1)[0])

    @property
    def package(self) -> str:
        """The Debian package, distribution or Maven ``group:artifact`` (without a version)."""
        return self.local.split(":", 1)[1].split("==", 1)[0]

    @property
    def package_version(self) -> str | None:
        """The pinned distribution version of a ``pypi:`` source, else None."""
        parts = self.local.split("==", 1)
        return parts[1] if len(parts) == 2 else None

    @property
    def major(self) -> str:
        """The major version (``15`` for PostgreSQL 15.18)."""
        return self.version.split(".", 1)[0]

    @property
    def image_tag(self) -> str:
        """The image's tag (after the last ``:`` of its last path segment)."""
        last = self.image.rsplit("/", 1)[-1]
        return last.rsplit(":", 1)[1] if ":" in last else ""

    def matches(self, reported: str | None) -> bool:
        """True when a server's reported version is this one (``15.18 (Debian ...)`` counts)."""
        if not reported:
            return False
        return reported.strip().split()[0].removeprefix("v") == self.version


@cache
def backend_versions() -> Mapping[str, BackendVersion]:
    """The manifest, checked: one :class:`BackendVersion` per backend, read once.

    Raises ``ValueError`` naming the backend and the problem when the file is incomplete or wrong
    (it ships with the package, so that is a defect of the release, not of the caller).
    """
    text = resources.files(__package__).joinpath(MANIFEST_NAME).read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    if sorted(raw) != sorted(_BACKENDS):
        raise ValueError(f"{MANIFEST_NAME} must list exactly {_BACKENDS}, found {sorted(raw)}")
    found: dict[str, BackendVersion] = {}
    for name in _BACKENDS:
        try:
            found[name] = BackendVersion(name=name, **raw[name])
        except (TypeError, ValidationError) as exc:
            raise ValueError(f"{MANIFEST_NAME} [{name}]: {exc}") from None
    return MappingProxyType(found)
