"""The stack's TLS: one CA and one server certificate per Docker host, all made by pulumi-tls.

* **The CA**: an ECDSA P-256 key (``tls.PrivateKey``) and a self-signed CA certificate
  (``tls.SelfSignedCert``, for signing certificates only). Its certificate is the stack
  output ``tls_ca`` that every client verifies the servers against; its key never leaves the
  (encrypted) state.
* **One certificate per host**, asked for by the components placed on it
  (:meth:`StackCertificates.for_host`): an ECDSA P-256 key, a ``tls.CertRequest`` whose
  subject alternative names are the host's address (an IP SAN: the URLs in the outputs name the
  address) and its name in config (a DNS SAN), and a ``tls.LocallySignedCert`` for
  ``server_auth``. Any host of ``hosts`` gets one the first time a backend is placed on it, so
  cluster placements (several nodes per backend) reuse the same call. The SANs do not name the
  backends: moving a backend leaves every certificate, and so every other container, alone.
* **A peer certificate per host**, only for servers that authenticate each other
  (``for_host(host, peer=True)``: a Redis Cluster node presents it on the cluster bus, which
  always asks for a client certificate, whatever ``tls-auth-clients`` says): the same SANs,
  for ``server_auth`` and ``client_auth``. The single topology has none.

Private keys are secret outputs of their resources (pulumi-tls marks ``private_key_pem`` and
``private_key_pem_pkcs8`` so), and every value derived from them stays secret. Servers get the
PKCS#8 form, which PostgreSQL, Redis, Typesense (OpenSSL), Neo4j (its PEM loader) and Qdrant
(rustls) all read.

**Stable after ``pulumi up``.** Nothing here depends on the clock: the validity periods are
durations, counted by the provider from issuance, and nothing is re-rendered on each run. A
certificate is reissued only once an ``up`` runs inside its early-renewal window (the last
:data:`HOST_EARLY_RENEWAL_HOURS` of a host certificate, the last :data:`CA_EARLY_RENEWAL_HOURS`
of the CA, which then reissues every host certificate with it). ``pulumi preview
--expect-no-changes`` failing in that window is the signal to renew (docs/lab.md, "TLS").
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from ._config import Host

__all__ = [
    "CA_EARLY_RENEWAL_HOURS",
    "CA_VALIDITY_HOURS",
    "HOST_EARLY_RENEWAL_HOURS",
    "HOST_VALIDITY_HOURS",
    "KEY_ALGORITHM",
    "KEY_CURVE",
    "HostCertificate",
    "StackCertificates",
]

#: Key type of the CA and of every server: ECDSA on P-256 (every server and driver here takes it).
KEY_ALGORITHM = "ECDSA"
KEY_CURVE = "P256"
#: The CA: ten years, renewed in its last two (longer than a host certificate lives, so no
#: host certificate ever outlives the CA that signed it).
CA_VALIDITY_HOURS = 10 * 365 * 24
CA_EARLY_RENEWAL_HOURS = 2 * 365 * 24
#: A host certificate: two years, renewed by an ``up`` in its last 30 days.
HOST_VALIDITY_HOURS = 2 * 365 * 24
HOST_EARLY_RENEWAL_HOURS = 30 * 24
_CA_USES = ("cert_signing", "crl_signing")
_SERVER_USES = ("digital_signature", "key_encipherment", "server_auth")
_ORGANIZATION = "mas-memory"


@dataclass(frozen=True)
class HostCertificate:
    """What a container on one host mounts: its host's certificate and key, and the CA."""

    host: Host
    #: PEM of the host's certificate (signed by the stack's CA).
    cert_pem: pulumi.Output[str]
    #: PKCS#8 PEM of the host's private key: secret.
    key_pem: pulumi.Output[str]
    #: PEM of the CA certificate (what clients verify against).
    ca_pem: pulumi.Output[str]


class StackCertificates(pulumi.ComponentResource):
    """The CA of one stack and, on demand, one server certificate per host (see module doc)."""

    def __init__(self, name: str, *, stack: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mas:infra:Certificates", name, None, opts)
        self._name = name
        self._stack = stack
        self._child = pulumi.ResourceOptions(parent=self)
        self._hosts: dict[str, HostCertificate] = {}
        self.ca_key = tls.PrivateKey(
            f"{name}-ca-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=self._child
        )
        self.ca_cert = tls.SelfSignedCert(
            f"{name}-ca-cert",
            private_key_pem=self.ca_key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(
                common_name=f"{_ORGANIZATION} {stack} CA", organization=_ORGANIZATION
            ),
            is_ca_certificate=True,
            allowed_uses=list(_CA_USES),
            validity_period_hours=CA_VALIDITY_HOURS,
            early_renewal_hours=CA_EARLY_RENEWAL_HOURS,
            set_subject_key_id=True,
            opts=self._child,
        )
        #: The CA certificate (PEM): the ``tls_ca`` stack output. Not a secret.
        self.ca_pem: pulumi.Output[str] = self.ca_cert.cert_pem
        self.register_outputs({"ca_pem": self.ca_pem})

    def for_host(self, host: Host, *, peer: bool = False) -> HostCertificate:
        """The certificate of ``host``, created the first time a component asks for it;
        ``peer``: the host's peer certificate (also for TLS client authentication)."""
        cache = f"{host.name}-peer" if peer else host.name
        found = self._hosts.get(cache)
        if found is not None:
            return found
        prefix = f"{self._name}-{cache}"
        key = tls.PrivateKey(
            f"{prefix}-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=self._child
        )
        request = tls.CertRequest(
            f"{prefix}-csr",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=host.name, organization=_ORGANIZATION),
            ip_addresses=[host.address],
            dns_names=[host.name],
            opts=self._child,
        )
        cert = tls.LocallySignedCert(
            f"{prefix}-cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=self.ca_key.private_key_pem,
            ca_cert_pem=self.ca_cert.cert_pem,
            allowed_uses=[*_SERVER_USES, *(("client_auth",) if peer else ())],
            validity_period_hours=HOST_VALIDITY_HOURS,
            early_renewal_hours=HOST_EARLY_RENEWAL_HOURS,
            set_subject_key_id=True,
            opts=self._child,
        )
        found = HostCertificate(
            host=host,
            cert_pem=cert.cert_pem,
            key_pem=pulumi.Output.secret(key.private_key_pem_pkcs8),
            ca_pem=self.ca_pem,
        )
        self._hosts[cache] = found
        return found
