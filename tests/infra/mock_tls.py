"""What the pulumi-tls provider would answer, made with ``cryptography`` for the mocked program.

The mocks turn each pulumi-tls resource's inputs into the outputs the real provider computes
(keys, a CSR carrying the requested names, certificates signed by the given CA key), so the
tests can check the program's wiring with real X.509: the certificate a container mounts
chains to the ``tls_ca`` output, names its host's address, matches the key beside it.

Everything is deterministic (keys derived from the resource name, fixed serials and validity
start), so two builds of the same config register byte-identical inputs: the mocked form of
"no perpetual diff".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"
CERT_REQUEST = "tls:index/certRequest:CertRequest"
LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"
TLS_TYPES = (PRIVATE_KEY, SELF_SIGNED_CERT, CERT_REQUEST, LOCALLY_SIGNED_CERT)
#: Every mocked certificate starts here; verify at a time inside its validity.
NOT_BEFORE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
_NAME_ATTRS = {"commonName": NameOID.COMMON_NAME, "organization": NameOID.ORGANIZATION_NAME}


def _plain(value: Any) -> Any:
    from pulumi.runtime import rpc

    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


def _key_for(name: str) -> ec.EllipticCurvePrivateKey:
    secret = int.from_bytes(hashlib.sha256(f"tls-key:{name}".encode()).digest()) % _P256_ORDER
    return ec.derive_private_key(secret or 1, ec.SECP256R1())


def _load_key(pem: Any) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(str(_plain(pem)).encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _name(subject: Any) -> x509.Name:
    subject = _plain(subject) or {}
    return x509.Name(
        [x509.NameAttribute(oid, str(subject[k])) for k, oid in _NAME_ATTRS.items() if k in subject]
    )


def _serial(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"serial:{name}".encode()).digest()[:16]) >> 1


def _usages(uses: list[str]) -> tuple[x509.KeyUsage, list[x509.ObjectIdentifier]]:
    flags = set(uses)
    usage = x509.KeyUsage(
        digital_signature="digital_signature" in flags,
        content_commitment=False,
        key_encipherment="key_encipherment" in flags,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign="cert_signing" in flags,
        crl_sign="crl_signing" in flags,
        encipher_only=False,
        decipher_only=False,
    )
    eku = [ExtendedKeyUsageOID.SERVER_AUTH] if "server_auth" in flags else []
    if "client_auth" in flags:
        eku.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    return usage, eku


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def tls_state(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs the provider would add to ``inputs`` for a pulumi-tls resource."""
    if typ == PRIVATE_KEY:
        assert (inputs["algorithm"], inputs.get("ecdsaCurve")) == ("ECDSA", "P256")
        key = _key_for(name)
        return {
            "privateKeyPem": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ).decode(),
            "privateKeyPemPkcs8": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "publicKeyPem": key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
        }
    if typ == CERT_REQUEST:
        key = _load_key(inputs["privateKeyPem"])
        sans: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address(ip)) for ip in _plain(inputs.get("ipAddresses"))
        ]
        sans += [x509.DNSName(n) for n in _plain(inputs.get("dnsNames")) or []]
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(_name(inputs.get("subject")))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256(), ecdsa_deterministic=True)
        )
        return {"certRequestPem": csr.public_bytes(serialization.Encoding.PEM).decode()}
    if typ == SELF_SIGNED_CERT:
        key = _load_key(inputs["privateKeyPem"])
        subject = _name(inputs.get("subject"))
        builder = _builder(name, inputs, subject, key.public_key(), issuer=subject)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = builder.add_extension(ski, critical=False)
        return {"certPem": _pem(builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True))}
    if typ == LOCALLY_SIGNED_CERT:
        ca_key = _load_key(inputs["caPrivateKeyPem"])
        ca = x509.load_pem_x509_certificate(str(_plain(inputs["caCertPem"])).encode())
        csr = x509.load_pem_x509_csr(str(_plain(inputs["certRequestPem"])).encode())
        public = csr.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        builder = _builder(name, inputs, csr.subject, public, issuer=ca.subject)
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        builder = builder.add_extension(san, critical=False)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public), critical=False
        )
        ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        return {"certPem": _pem(builder.sign(ca_key, hashes.SHA256(), ecdsa_deterministic=True))}
    raise AssertionError(f"not a pulumi-tls type: {typ}")


def _builder(
    name: str,
    inputs: dict[str, Any],
    subject: x509.Name,
    public: ec.EllipticCurvePublicKey,
    *,
    issuer: x509.Name,
) -> x509.CertificateBuilder:
    hours = int(inputs["validityPeriodHours"])
    usage, eku = _usages(list(_plain(inputs.get("allowedUses")) or []))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(_serial(name))
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_BEFORE + dt.timedelta(hours=hours))
        .add_extension(
            x509.BasicConstraints(ca=bool(inputs.get("isCaCertificate")), path_length=None),
            critical=True,
        )
        .add_extension(usage, critical=True)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder
