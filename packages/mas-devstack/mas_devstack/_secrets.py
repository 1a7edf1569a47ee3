"""Generated credentials, kept in ``.mas/secrets.json`` (0600) and reused on every ``up``.

Reusing them matters: the data directories remember the passwords they were initialised with.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ._errors import DevstackError


def _token() -> str:
    # Hex only: safe unquoted in URLs, config files and Cypher, and never starts with '-'.
    return secrets.token_hex(24)


@dataclass(frozen=True, repr=False)
class Secrets:
    """The stack's passwords and keys; ``repr`` never shows them."""

    postgres_admin_password: str
    """The ``postgres`` superuser's (the stack's own use only)."""
    postgres_password: str
    """The schema owner ``mas``'s (migrations; the admin outputs)."""
    redis_password: str
    """The Redis ``admin`` ACL user's (the admin outputs)."""
    typesense_api_key: str
    """Typesense's bootstrap admin key (the admin outputs)."""
    neo4j_password: str
    postgres_app_password: str
    """The least-privileged ``mas_app`` role's (the adapter's ``postgres_url``)."""
    redis_app_password: str
    """The ``mas_app`` ACL user's (the adapter's ``redis_url``)."""
    typesense_app_api_key: str
    """The scoped key's value (the adapter's ``typesense_api_key``)."""
    postgres_replication_password: str
    """The ``mas_replicator`` role's (streaming replication in the cluster topology; the
    admin outputs' ``postgres_replication_url``)."""
    redis_replication_password: str
    """The Redis Cluster replicas' ``replicator`` ACL user's (``masterauth``; no outputs)."""

    def __repr__(self) -> str:
        return "Secrets(***)"

    def values(self) -> list[str]:
        """Every secret, for redacting log tails."""
        return list(asdict(self).values())


def write_private_json(path: Path, data: dict[str, object]) -> None:
    """Write ``data`` as JSON, mode 0600 from the first byte, replacing ``path`` atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_or_create_secrets(path: Path) -> Secrets:
    """The secrets stored at ``path``; missing ones are generated and the file is (re)written."""
    stored: dict[str, object] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DevstackError(
                f"{path} is unreadable ({type(exc).__name__}); remove it only together with "
                "the data directories under .mas/ (they hold the old passwords)"
            ) from None
        if not isinstance(stored, dict):
            raise DevstackError(f"{path} must hold a JSON object")
    values: dict[str, str] = {}
    changed = False
    for field in fields(Secrets):
        value = stored.get(field.name)
        if not isinstance(value, str) or not value:
            value = _token()
            changed = True
        values[field.name] = value
    if changed:
        write_private_json(path, dict(values))
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return Secrets(**values)
