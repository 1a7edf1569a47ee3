"""How the policies read a resource's properties: secret marks, env entries, labels, uploads.

Python policies get secret values decrypted and unmarked during validation
(pulumi/pulumi-policy#241); remediations and the unit tests' captured inputs carry the marks
(``pulumi_policy.Secret`` or the wire form). Every rule reads values through :func:`plain`, so
it works on both, and uses :func:`is_secret` / :func:`has_marks` where the marks matter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import Secret
from pulumi_policy.proxy import UnknownValueError

__all__ = ["env_map", "has_marks", "is_secret", "known_items", "label", "plain", "uploads_of"]

_RPC_SIG_KEY = "4dabf18193072939515e22adb298388d"
_RPC_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 (a type signature)


def is_secret(value: Any) -> bool:
    """Whether ``value`` carries a secret mark (either form)."""
    return isinstance(value, Secret) or (
        isinstance(value, Mapping) and value.get(_RPC_SIG_KEY) == _RPC_SECRET_SIG
    )


def plain(value: Any) -> Any:
    """The value without a secret mark."""
    while is_secret(value):
        value = value.value if isinstance(value, Secret) else value.get("value")
    return value


def has_marks(value: Any) -> bool:
    """Whether these properties come with secret marks at all (not so in plain validation)."""
    if is_secret(value):
        return True
    if isinstance(value, Mapping):
        return any(has_marks(v) for v in value.values())
    if isinstance(value, Sequence) and not isinstance(value, str):
        return any(has_marks(v) for v in value)
    return False


def known_items(value: Any) -> Iterator[Any]:
    """The items of a list property that are known (in a preview, generated values are not),
    marks dropped from each; nothing for a missing property."""
    items = plain(value) or []
    for index in range(len(items)):
        try:
            yield plain(items[index])
        except UnknownValueError:
            continue


def env_map(props: Mapping[str, Any]) -> dict[str, str]:
    """A container's known ``envs`` as ``name -> value`` (marks dropped)."""
    found: dict[str, str] = {}
    for entry in known_items(props.get("envs")):
        name, _, value = str(plain(entry)).partition("=")
        found[name] = value
    return found


def label(props: Mapping[str, Any], name: str) -> str | None:
    """The value of a container label, or None."""
    for item in known_items(props.get("labels")):
        if isinstance(item, Mapping) and plain(item.get("label")) == name:
            value = plain(item.get("value"))
            return None if value is None else str(value)
    return None


def uploads_of(props: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A container's uploads as ``path in the container -> upload`` (marks kept inside)."""
    found: dict[str, Mapping[str, Any]] = {}
    for item in known_items(props.get("uploads")):
        if isinstance(item, Mapping) and plain(item.get("file")):
            found[str(plain(item["file"]))] = item
    return found
