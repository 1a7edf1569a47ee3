"""The policy pack's TLS rules: plaintext never served, certificates mounted, keys secret.

Each backend container says which backend it is with its ``mas.backend`` label; how that
backend switches TLS on is backend knowledge, read here from the container's command and env
(:data:`_READERS`). Three pure checks:

* :func:`check_tls_served`: the backend's TLS switches are on, its plaintext listener is off
  (Redis ``--port 0``, Neo4j's HTTP connector, PostgreSQL's ``pg_hba.conf`` without ``host``
  or ``hostnossl`` lines), and every published port is one that serves TLS only;
* :func:`check_tls_files`: the certificate and the key each server reads are uploaded into the
  container, hold a certificate and a private key, and the key is owner-only (``0600``; when
  the server reads a copy the command makes with ``install``, the copy's mode counts too);
* :func:`check_tls_keys_secret`: a container whose uploads hold a private key lists
  ``uploads`` among its additional secret outputs (and, where marks are visible, the key is
  secret); every pulumi-tls resource keeps its private-key properties secret.

During a first preview, values that are not known yet (the certificates, generated
passwords) are skipped where the check does not need them and otherwise reported by the SDK as
"can't run policy during preview"; the rules then run on ``pulumi up``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mas_policy_values import env_map, has_marks, is_secret, known_items, label, plain, uploads_of

__all__ = [
    "BACKEND_LABEL",
    "TLS_KEY_SECRET_OUTPUTS",
    "check_tls_files",
    "check_tls_keys_secret",
    "check_tls_served",
]

CONTAINER = "docker:index/container:Container"
BACKEND_LABEL = "mas.backend"
#: pulumi-tls resource type -> the properties that hold a private key (must be secret).
TLS_KEY_SECRET_OUTPUTS: Mapping[str, tuple[str, ...]] = {
    "tls:index/privateKey:PrivateKey": ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"),
    "tls:index/certRequest:CertRequest": ("privateKeyPem",),
    "tls:index/selfSignedCert:SelfSignedCert": ("privateKeyPem",),
    "tls:index/locallySignedCert:LocallySignedCert": ("caPrivateKeyPem",),
}
_CERT_MARK = "-----BEGIN CERTIFICATE-----"
_KEY_MARK = re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")
_OWNER_ONLY = frozenset({"0600", "0400"})
_INSTALL_ARGS = frozenset({"-m", "-o", "-g", "-t", "-S", "--mode", "--owner", "--group"})


@dataclass
class _Served:
    """What a backend container's settings say about its TLS."""

    problems: list[str] = field(default_factory=list)
    #: ("certificate" | "key", path the server reads)
    files: list[tuple[str, str]] = field(default_factory=list)
    #: Ports inside the container that serve TLS only.
    tls_ports: set[int] = field(default_factory=set)

    def need(self, server: str, setting: str, kind: str, path: str | None) -> None:
        """The server reads its ``kind`` from ``path`` (set by ``setting``); missing: a problem."""
        if path:
            self.files.append((kind, path))
        else:
            self.problems.append(f"{server} has no {setting}")


def _flag(command: str, pattern: str) -> str | None:
    found = re.search(pattern, command)
    return found.group(1) if found else None


def _postgres(command: str, env: Mapping[str, str], uploads: Mapping[str, Any]) -> _Served:
    served = _Served(tls_ports={5432})
    if not re.search(r"-c\s+ssl=(on|true|1)\b", command):
        served.problems.append("PostgreSQL runs without ssl=on")
    for kind, setting in (("certificate", "ssl_cert_file"), ("key", "ssl_key_file")):
        served.need("PostgreSQL", setting, kind, _flag(command, rf"-c\s+{setting}=(\S+)"))
    hba = _flag(command, r"-c\s+hba_file=(\S+)")
    if hba is None or hba not in uploads:
        served.problems.append(
            "PostgreSQL uses the image's pg_hba.conf, which accepts plaintext 'host' logins: "
            "upload one with 'hostssl' lines only and name it with -c hba_file="
        )
        return served
    content = str(plain(uploads[hba].get("content")) or "")
    plaintext = [
        line.strip()
        for line in content.splitlines()
        if line.split()[:1] and line.split()[0] in ("host", "hostnossl", "hostgssenc")
    ]
    if plaintext:
        served.problems.append(f"pg_hba.conf admits connections without TLS: {plaintext}")
    return served


def _redis(command: str, env: Mapping[str, str], uploads: Mapping[str, Any]) -> _Served:
    served = _Served()
    if not re.search(r"--port\s+0\b", command):
        served.problems.append("Redis serves plaintext: its command lacks '--port 0'")
    port = _flag(command, r"--tls-port\s+(\d+)")
    if port is None:
        served.problems.append("Redis has no --tls-port")
    else:
        served.tls_ports.add(int(port))
        # A cluster node's bus (tls-port + 10000 unless --cluster-port) is TLS with this flag.
        if re.search(r"--cluster-enabled\s+yes", command) and re.search(
            r"--tls-cluster\s+yes", command
        ):
            bus = _flag(command, r"--cluster-port\s+(\d+)")
            served.tls_ports.add(int(bus) if bus else int(port) + 10000)
    for kind, flag in (("certificate", "--tls-cert-file"), ("key", "--tls-key-file")):
        served.need("Redis", flag, kind, _flag(command, rf"{flag}\s+(\S+)"))
    return served


def _neo4j(command: str, env: Mapping[str, str], uploads: Mapping[str, Any]) -> _Served:
    served = _Served()
    if env.get("NEO4J_server_bolt_tls__level", "").upper() != "REQUIRED":
        served.problems.append("Neo4j's Bolt does not require TLS (server.bolt.tls_level)")
    if env.get("NEO4J_server_http_enabled", "").lower() != "false":
        served.problems.append("Neo4j's plaintext HTTP connector is on (server.http.enabled)")
    for policy, port, connector in (("bolt", 7687, None), ("https", 7473, "https")):
        prefix = f"NEO4J_dbms_ssl_policy_{policy}_"
        if env.get(f"{prefix}enabled", "").lower() != "true":
            if connector is None:
                served.problems.append("Neo4j has no Bolt SSL policy (dbms.ssl.policy.bolt)")
            continue
        if connector and env.get(f"NEO4J_server_{connector}_enabled", "").lower() != "true":
            continue
        served.tls_ports.add(port)
        base = env.get(f"{prefix}base__directory", f"certificates/{policy}")
        served.files.append(
            ("certificate", f"{base}/{env.get(f'{prefix}public__certificate', 'public.crt')}")
        )
        served.files.append(("key", f"{base}/{env.get(f'{prefix}private__key', 'private.key')}"))
    return served


def _typesense(command: str, env: Mapping[str, str], uploads: Mapping[str, Any]) -> _Served:
    served = _Served(tls_ports={8108})
    for kind, flag in (("certificate", "ssl-certificate"), ("key", "ssl-certificate-key")):
        path = _flag(command, rf"--{flag}=(\S+)") or env.get(
            "TYPESENSE_" + flag.upper().replace("-", "_")
        )
        served.need("Typesense", f"--{flag} (it serves plaintext HTTP)", kind, path)
    return served


def _qdrant(command: str, env: Mapping[str, str], uploads: Mapping[str, Any]) -> _Served:
    served = _Served(tls_ports={6333, 6334})
    if env.get("QDRANT__SERVICE__ENABLE_TLS", "").lower() != "true":
        served.problems.append("Qdrant serves plaintext: QDRANT__SERVICE__ENABLE_TLS is not true")
    for kind, name in (("certificate", "QDRANT__TLS__CERT"), ("key", "QDRANT__TLS__KEY")):
        served.need("Qdrant", name, kind, env.get(name))
    return served


_READERS: Mapping[str, Callable[[str, Mapping[str, str], Mapping[str, Any]], _Served]] = {
    "postgres": _postgres,
    "redis": _redis,
    "neo4j": _neo4j,
    "typesense": _typesense,
    "qdrant": _qdrant,
}


def _command(props: Mapping[str, Any]) -> str:
    parts = [*known_items(props.get("entrypoints")), *known_items(props.get("command"))]
    return " ".join(str(p) for p in parts)


def _read(props: Mapping[str, Any]) -> tuple[str | None, _Served]:
    backend = label(props, BACKEND_LABEL)
    reader = _READERS.get(backend or "")
    if reader is None:
        problem = (
            f"container has no '{BACKEND_LABEL}' label naming one of {sorted(_READERS)}, so "
            "whether it serves TLS cannot be checked"
        )
        return backend, _Served(problems=[problem])
    return backend, reader(_command(props), env_map(props), uploads_of(props))


def check_tls_served(props: Mapping[str, Any]) -> list[str]:
    """A backend container serves TLS only, and publishes only ports that serve TLS."""
    backend, served = _read(props)
    problems = list(served.problems)
    if backend not in _READERS:
        return problems
    for port in known_items(props.get("ports")):
        internal = int(plain(port.get("internal")))
        if internal not in served.tls_ports:
            problems.append(
                f"port {plain(port.get('external'))}->{internal} is published but {backend} "
                f"serves TLS only on {sorted(served.tls_ports)} there"
            )
    return problems


def _copies(command: str) -> dict[str, tuple[str, str]]:
    """The ``install [options] SRC DST`` steps of the command: DST -> (SRC, mode)."""
    found = {}
    for step in re.split(r"&&|;|\|\|", command):
        try:
            words = shlex.split(step)
        except ValueError:
            continue
        if "install" not in words:
            continue
        words = words[words.index("install") :]  # after a leading "sh -c", say
        mode, operands, index = "0755", [], 1
        while index < len(words):
            word = words[index]
            if word in _INSTALL_ARGS:
                if word in ("-m", "--mode") and index + 1 < len(words):
                    mode = words[index + 1]
                index += 2
                continue
            if not word.startswith("-"):
                operands.append(word)
            index += 1
        if len(operands) == 2:
            found[operands[1]] = (operands[0], mode if mode.startswith("0") else f"0{mode}")
    return found


def check_tls_files(props: Mapping[str, Any]) -> list[str]:
    """The certificate and key the server reads are uploaded, hold PEM, and the key is 0600."""
    backend, served = _read(props)
    if backend not in _READERS:
        return []
    uploads = uploads_of(props)
    copies = _copies(_command(props))
    problems = []
    for kind, path in served.files:
        source, copy_mode = copies.get(path, (path, None))
        upload = uploads.get(source)
        if upload is None:
            problems.append(f"the {kind} {backend} reads ({path}) is not uploaded to the container")
            continue
        content = str(plain(upload.get("content")) or "")
        if kind == "certificate" and _CERT_MARK not in content:
            problems.append(f"{source}, the {kind} {backend} reads, holds no PEM certificate")
        if kind == "key":
            if not _KEY_MARK.search(content):
                problems.append(f"{source}, the key {backend} reads, holds no PEM private key")
            modes = [plain(upload.get("permissions")) or "0644", copy_mode]
            loose = [m for m in modes if m is not None and m not in _OWNER_ONLY]
            if loose:
                problems.append(
                    f"the key {backend} reads ({path}) is readable beyond its owner (mode "
                    f"{loose[0]}): give it permissions 0600"
                )
    return problems


def check_tls_keys_secret(
    resource_type: str, props: Mapping[str, Any], additional_secret_outputs: Sequence[str]
) -> list[str]:
    """Private keys stay secret: in containers' uploads and in pulumi-tls resources."""
    if resource_type in TLS_KEY_SECRET_OUTPUTS:
        missing = [
            name
            for name in TLS_KEY_SECRET_OUTPUTS[resource_type]
            if name not in additional_secret_outputs
        ]
        if missing:
            return [
                f"{missing} hold a private key but are not additional secret outputs: the "
                "state would keep the key in plain text"
            ]
        return []
    if resource_type != CONTAINER:
        return []
    raw = props.get("uploads")
    keys = [
        path
        for path, upload in uploads_of(props).items()
        if _KEY_MARK.search(str(plain(upload.get("content")) or ""))
    ]
    if not keys:
        return []
    problems = []
    if "uploads" not in additional_secret_outputs:
        problems.append(
            f"uploads {keys} hold a private key but 'uploads' is not in "
            "additional_secret_outputs, so the engine could store it in plain text"
        )
    if has_marks(props) and not is_secret(raw):
        plain_keys = [
            path
            for path, upload in uploads_of(props).items()
            if path in keys and not is_secret(upload.get("content"))
        ]
        if plain_keys:
            problems.append(f"uploads {plain_keys} hold a private key as a plain value")
    return problems
