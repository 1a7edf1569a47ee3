"""The local stack's certificates: one CA, and one server certificate per service.

Made with ``cryptography`` (no ``openssl`` command). ECDSA P-256 keys, in PKCS#8 PEM (what
PostgreSQL, Redis, Typesense and Neo4j all read). Everything lives in ``.mas/tls/``:

* ``ca.pem`` (the CA certificate: what the outputs' ``tls_ca`` names) and ``ca-key.pem``
  (0600, never in any outputs), made once and kept: every client keeps trusting the stack;
* ``<name>.pem`` and ``<name>-key.pem`` (0600) per service, listing the service's addresses as
  IP SANs (127.0.0.1, or its simulated host's address). Issued again when the addresses it
  must list change, when the CA changed, or within 30 days of its end.

The certificates satisfy strict verifiers (Python 3.13's ``VERIFY_X509_STRICT``): a CA with
``BasicConstraints(ca)``, ``KeyUsage(keyCertSign)`` and a subject key id; servers with
``serverAuth``, ``digitalSignature``, an authority key id and SANs. Any number of services and
addresses: a cluster topology issues one per node with :meth:`StackCa.issue`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ._errors import DevstackError

__all__ = ["IssuedCertificate", "StackCa"]

CA_DAYS = 3650
SERVER_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)
_ORG = "mas-devstack"


@dataclass(frozen=True)
class IssuedCertificate:
    """A service's certificate and private key files."""

    cert: Path
    key: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with ``mode`` from the first byte."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _tag(directory: Path) -> str:
    """A short tag of the stack's root, so two stacks' CAs have different names."""
    return hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:12]


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signatures only (ECDSA keys sign, they never encipher); a CA also signs certificates
    and CRLs."""
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StackCa:
    """The CA of one stack (``<dir>/ca.pem``), and the certificates it issues."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca_cert_path = directory / "ca.pem"
        self.ca_key_path = directory / "ca-key.pem"

    # -- the CA ------------------------------------------------------------------------------

    def ensure(self) -> None:
        """Make the CA unless a valid one is there."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)  # the certificates are public; each key file is 0600
        if self.ca_cert_path.is_file() and self.ca_key_path.is_file():
            try:
                cert = self._ca_cert()
                if cert.not_valid_after_utc - _now() > RENEW_BEFORE:
                    return
            except (ValueError, OSError):
                pass
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{_ORG} CA {_tag(self.dir)}"),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        _write(self.ca_key_path, _key_pem(key), 0o600)
        _write(self.ca_cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def _ca_cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())

    def _ca_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise DevstackError(f"{self.ca_key_path} is not an EC key")
        return key

    # -- server certificates -----------------------------------------------------------------

    def paths(self, name: str) -> IssuedCertificate:
        return IssuedCertificate(self.dir / f"{name}.pem", self.dir / f"{name}-key.pem")

    def issue(
        self,
        name: str,
        addresses: Sequence[str],
        dns_names: Iterable[str] = (),
        *,
        client: bool = False,
    ) -> IssuedCertificate:
        """The certificate of service ``name`` for ``addresses`` (IPs) and ``dns_names``:
        kept when it already lists exactly those, is signed by this CA and is not near its
        end; issued again otherwise. ``client``: also for TLS client authentication
        (``clientAuth``), for servers that present it to each other (a Redis Cluster's bus
        verifies both ends)."""
        self.ensure()
        ips = sorted({ipaddress.ip_address(a) for a in addresses}, key=str)
        dns = sorted(set(dns_names))
        if not ips and not dns:
            raise DevstackError(f"a certificate for {name} needs an address or a name")
        out = self.paths(name)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH]
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        if self._current(out, ips, dns, usages):
            return out
        ca_cert, ca_key = self._ca_cert(), self._ca_key()
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        sans: list[x509.GeneralName] = [x509.IPAddress(ip) for ip in ips]
        sans += [x509.DNSName(d) for d in dns]
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                        x509.NameAttribute(NameOID.COMMON_NAME, f"{name} {ips[0] if ips else ''}"),
                    ]
                )
            )
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write(out.key, _key_pem(key), 0o600)
        _write(out.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return out

    def _current(
        self,
        out: IssuedCertificate,
        ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
        dns: list[str],
        usages: list[x509.ObjectIdentifier],
    ) -> bool:
        if not (out.cert.is_file() and out.key.is_file()):
            return False
        try:
            cert = x509.load_pem_x509_certificate(out.cert.read_bytes())
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            listed_ips = sorted(san.get_values_for_type(x509.IPAddress), key=str)
            listed_dns = sorted(san.get_values_for_type(x509.DNSName))
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            ca = self._ca_cert()
            signed = cert.issuer == ca.subject
            if signed:
                cert.verify_directly_issued_by(ca)
        except (ValueError, OSError, x509.ExtensionNotFound, TypeError):
            return False
        fresh = cert.not_valid_after_utc - _now() > RENEW_BEFORE
        same = listed_ips == ips and listed_dns == dns and list(eku) == usages
        return signed and fresh and same

    # -- what the secrets sweep needs --------------------------------------------------------

    def private_key_files(self) -> list[Path]:
        """Every private key file of this stack (the CA's first)."""
        others = sorted(p for p in self.dir.glob("*-key.pem") if p != self.ca_key_path)
        return [self.ca_key_path, *others]
