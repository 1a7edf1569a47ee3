"""TLS in the program: one CA, one certificate per host, mounted where each server reads it.

The mocked pulumi-tls provider (``mock_tls``) answers with real keys and certificates, so these
tests check the wiring with real X.509: the certificate each container mounts chains to the
``tls_ca`` output and is valid for the very address its backend's URL names, the key beside it
belongs to it and is uploaded owner-only and secret, and each server's flags name those files.
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import shlex
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store
from infra_harness import CONTAINER, Built, Registration, build_program
from mas_infra import (
    CA_EARLY_RENEWAL_HOURS,
    CA_VALIDITY_HOURS,
    HOST_EARLY_RENEWAL_HOURS,
    HOST_VALIDITY_HOURS,
)
from mock_tls import (
    CERT_REQUEST,
    LOCALLY_SIGNED_CERT,
    NOT_BEFORE,
    PRIVATE_KEY,
    SELF_SIGNED_CERT,
)
from pulumi.runtime import rpc

#: Where each backend's server reads its certificate and key (the uploaded files).
SERVER_FILES = {
    "postgres": ("/etc/mas/tls/server.crt", "/etc/mas/tls/server.key"),
    "redis": ("/etc/mas/tls/server.crt", "/etc/mas/tls/server.key"),
    "qdrant": ("/etc/mas/tls/server.crt", "/etc/mas/tls/server.key"),
    "typesense": ("/etc/mas/tls/server.crt", "/etc/mas/tls/server.key"),
    "neo4j": (
        "/var/lib/neo4j/certificates/bolt/public.crt",
        "/var/lib/neo4j/certificates/bolt/private.key",
    ),
}
#: Each backend's URL output, to check the certificate against the address clients dial.
URL_OUTPUT = {
    "postgres": "postgres_url",
    "redis": "redis_url",
    "qdrant": "qdrant_url",
    "neo4j": "neo4j_url",
    "typesense": "typesense_url",
}
#: A moment inside every mocked certificate's validity.
VERIFY_AT = NOT_BEFORE + dt.timedelta(days=30)


def _plain(value: Any) -> Any:
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


def _uploads(container: Registration) -> dict[str, dict[str, Any]]:
    return {u["file"]: u for u in (_plain(u) for u in _plain(container.inputs["uploads"]))}


def _content(upload: dict[str, Any]) -> str:
    return str(_plain(upload["content"]))


def _state(built: Built, typ: str, name: str) -> dict[str, Any]:
    return built.state[built.one(typ, name).urn]


def _ca(built: Built) -> x509.Certificate:
    return x509.load_pem_x509_certificate(built.outputs["tls_ca"].encode())


def _verify(ca: x509.Certificate, cert: x509.Certificate, address: str) -> None:
    """Verify ``cert`` for ``address`` against ``ca`` as a TLS client would (raises if not)."""
    verifier = (
        PolicyBuilder()
        .store(Store([ca]))
        .time(VERIFY_AT)
        .build_server_verifier(x509.IPAddress(ipaddress.ip_address(address)))
    )
    verifier.verify(cert, [])


def _server_files(built: Built, backend: str) -> tuple[x509.Certificate, str, dict[str, Any]]:
    uploads = _uploads(built.one(CONTAINER, f"{backend}-container"))
    cert_path, key_path = SERVER_FILES[backend]
    cert = x509.load_pem_x509_certificate(_content(uploads[cert_path]).encode())
    return cert, key_path, uploads


# -- the CA and the host certificates ----------------------------------------------------------


def test_one_ca_and_one_certificate_per_host_in_use(built: Built) -> None:
    hosts = built.stack.config.used_hosts
    assert len(built.of_type(SELF_SIGNED_CERT)) == 1
    assert sorted(r.name for r in built.of_type(LOCALLY_SIGNED_CERT)) == sorted(
        f"tls-{h}-cert" for h in hosts
    )
    assert sorted(r.name for r in built.of_type(PRIVATE_KEY)) == sorted(
        ["tls-ca-key", *(f"tls-{h}-key" for h in hosts)]
    )
    for key in built.of_type(PRIVATE_KEY):
        assert (key.inputs["algorithm"], key.inputs["ecdsaCurve"]) == ("ECDSA", "P256")


def test_the_ca_signs_certificates_only(built: Built) -> None:
    ca = _ca(built)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    cert = built.one(SELF_SIGNED_CERT, "tls-ca-cert")
    assert cert.inputs["isCaCertificate"] is True
    assert cert.inputs["setSubjectKeyId"] is True  # strict verifiers want the key IDs
    # every host certificate is signed with the CA's key, which travels only as a secret
    ca_key = _state(built, PRIVATE_KEY, "tls-ca-key")["privateKeyPem"]
    for signed in built.of_type(LOCALLY_SIGNED_CERT):
        assert rpc.is_rpc_secret(signed.inputs["caPrivateKeyPem"])
        assert _plain(signed.inputs["caPrivateKeyPem"]) == ca_key
        assert signed.inputs["caCertPem"] == built.outputs["tls_ca"]


def test_host_certificates_name_the_host_address_and_serve_only(built: Built) -> None:
    ca = _ca(built)
    for host_name in built.stack.config.used_hosts:
        host = built.stack.config.hosts[host_name]
        request = built.one(CERT_REQUEST, f"tls-{host_name}-csr")
        assert request.inputs["ipAddresses"] == [host.address]
        assert request.inputs["dnsNames"] == [host_name]
        pem = _state(built, LOCALLY_SIGNED_CERT, f"tls-{host_name}-cert")["certPem"]
        cert = x509.load_pem_x509_certificate(pem.encode())
        _verify(ca, cert, host.address)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
        signed = built.one(LOCALLY_SIGNED_CERT, f"tls-{host_name}-cert")
        assert signed.inputs["allowedUses"] == [
            "digital_signature",
            "key_encipherment",
            "server_auth",
        ]
        assert not signed.inputs.get("isCaCertificate")


def test_validity_and_renewal_leave_a_fresh_stack_settled() -> None:
    # Right after `up` no certificate is in its early-renewal window, or `preview
    # --expect-no-changes` would show a replacement at once.
    assert 0 < HOST_EARLY_RENEWAL_HOURS < HOST_VALIDITY_HOURS
    assert HOST_VALIDITY_HOURS - HOST_EARLY_RENEWAL_HOURS >= 365 * 24
    assert 0 < CA_EARLY_RENEWAL_HOURS < CA_VALIDITY_HOURS
    # No host certificate outlives the CA that signed it: the CA renews (and reissues them)
    # while a fresh host certificate could still run past the CA's end.
    assert CA_EARLY_RENEWAL_HOURS >= HOST_VALIDITY_HOURS


def test_validity_inputs_are_durations_not_dates(built: Built) -> None:
    for typ in (SELF_SIGNED_CERT, LOCALLY_SIGNED_CERT):
        for reg in built.of_type(typ):
            assert not {"validityStartTime", "validityEndTime"} & set(reg.inputs), reg.name
            expected = (
                (CA_VALIDITY_HOURS, CA_EARLY_RENEWAL_HOURS)
                if typ == SELF_SIGNED_CERT
                else (HOST_VALIDITY_HOURS, HOST_EARLY_RENEWAL_HOURS)
            )
            assert (
                int(reg.inputs["validityPeriodHours"]),
                int(reg.inputs["earlyRenewalHours"]),
            ) == expected


def test_private_keys_are_secret_outputs_of_their_resources(built: Built) -> None:
    for key in built.of_type(PRIVATE_KEY):
        assert {"privateKeyPem", "privateKeyPemPkcs8"} <= set(key.additional_secret_outputs)
    for signed in built.of_type(LOCALLY_SIGNED_CERT):
        assert "caPrivateKeyPem" in signed.additional_secret_outputs
    for typ in (CERT_REQUEST, SELF_SIGNED_CERT):
        for reg in built.of_type(typ):
            assert "privateKeyPem" in reg.additional_secret_outputs


def test_no_private_key_in_any_output(built: Built) -> None:
    for key, value in {**built.outputs, **built.admin_outputs}.items():
        assert "PRIVATE KEY" not in value, key


# -- what each container mounts ----------------------------------------------------------------


@pytest.mark.parametrize("backend", list(SERVER_FILES))
def test_container_mounts_its_host_certificate_valid_for_its_url(
    built: Built, backend: str
) -> None:
    cert, key_path, uploads = _server_files(built, backend)
    address = urlsplit(built.outputs[URL_OUTPUT[backend]]).hostname
    assert address == built.stack.config.host_for(backend).address
    _verify(_ca(built), cert, address)
    # the key beside it is the certificate's own, PKCS#8, root-only and secret
    key = serialization.load_pem_private_key(_content(uploads[key_path]).encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == cert.public_key()
    assert _content(uploads[key_path]).startswith("-----BEGIN PRIVATE KEY-----")
    assert uploads[key_path]["permissions"] == "0600"
    host = built.stack.config.placement[backend]
    assert (
        _content(uploads[key_path])
        == _state(built, PRIVATE_KEY, f"tls-{host}-key")["privateKeyPemPkcs8"]
    )
    for path, upload in uploads.items():
        if "PRIVATE KEY" in _content(upload):
            assert upload["permissions"] == "0600", path
        elif "CERTIFICATE" in _content(upload):
            assert upload["permissions"] == "0644", path  # public, whoever reads it


@pytest.mark.parametrize("backend", ["postgres", "redis", "qdrant", "typesense"])
def test_container_mounts_the_ca_its_healthcheck_verifies_with(built: Built, backend: str) -> None:
    container = built.one(CONTAINER, f"{backend}-container")
    uploads = _uploads(container)
    assert _content(uploads["/etc/mas/tls/ca.crt"]) == built.outputs["tls_ca"]
    assert "/etc/mas/tls/ca.crt" in " ".join(container.inputs["healthcheck"]["tests"])


def test_neo4j_serves_bolt_and_https_with_the_same_host_certificate(built: Built) -> None:
    uploads = _uploads(built.one(CONTAINER, "neo4j-container"))
    base = "/var/lib/neo4j/certificates"
    for name in ("public.crt", "private.key"):
        assert _content(uploads[f"{base}/bolt/{name}"]) == _content(uploads[f"{base}/https/{name}"])
    assert sorted(uploads) == sorted(
        f"{base}/{p}/{n}" for p in ("bolt", "https") for n in ("public.crt", "private.key")
    )


@pytest.mark.parametrize(("backend", "user"), [("postgres", "postgres"), ("redis", "redis")])
def test_servers_that_drop_root_read_an_owner_only_copy_of_the_key(
    built: Built, backend: str, user: str
) -> None:
    command = built.one(CONTAINER, f"{backend}-container").inputs["command"]
    assert command[:2] == ["sh", "-c"]
    steps = [shlex.split(step) for step in command[2].split(" && ")]
    copy_step = steps[0]
    assert copy_step[:1] == ["install"]
    assert copy_step[copy_step.index("-m") + 1] == "0600"
    assert copy_step[copy_step.index("-o") + 1] == user
    assert copy_step[copy_step.index("-g") + 1] == user
    source, target = copy_step[-2:]
    assert source == "/etc/mas/tls/server.key"
    # ... and the server is started on that copy, after the copy
    server = steps[-1]
    assert server[:2] == ["exec", "docker-entrypoint.sh"]
    assert target in " ".join(server)
    assert source not in " ".join(server)


# -- hosts and placement -----------------------------------------------------------------------


def test_a_third_host_gets_its_own_certificate_for_its_address(dev_config: dict[str, Any]) -> None:
    cfg = copy.deepcopy(dev_config)
    cfg["hosts"]["lab-c"] = {"address": "192.168.107.200", "user": "ops"}
    cfg["hosts"]["spare"] = {"address": "192.168.107.201"}
    cfg["placement"]["typesense"] = "lab-c"
    built = build_program(cfg)
    assert sorted(r.name for r in built.of_type(LOCALLY_SIGNED_CERT)) == [
        "tls-lab-a-cert",
        "tls-lab-b-cert",
        "tls-lab-c-cert",
    ]  # none for the spare host nothing is placed on
    cert, _, _ = _server_files(built, "typesense")
    _verify(_ca(built), cert, "192.168.107.200")
    with pytest.raises(x509.verification.VerificationError):
        _verify(_ca(built), cert, "192.168.107.187")  # not valid for the other hosts


def test_moving_a_backend_leaves_every_certificate_as_it_was(
    dev_config: dict[str, Any], dev_built: Built
) -> None:
    cfg = copy.deepcopy(dev_config)
    cfg["placement"]["neo4j"] = "lab-a"
    moved = build_program(cfg)
    for typ in (PRIVATE_KEY, CERT_REQUEST, LOCALLY_SIGNED_CERT, SELF_SIGNED_CERT):
        assert {r.name: r.inputs for r in moved.of_type(typ)} == {
            r.name: r.inputs for r in dev_built.of_type(typ)
        }
    cert, _, _ = _server_files(moved, "neo4j")
    _verify(_ca(moved), cert, "192.168.107.172")  # now lab-a's certificate
    lab_a = _state(moved, LOCALLY_SIGNED_CERT, "tls-lab-a-cert")["certPem"]
    assert cert.public_bytes(serialization.Encoding.PEM).decode() == lab_a


def test_certificate_subject_names_the_stack_and_host(built: Built) -> None:
    stack = built.stack.certificates._stack
    subject = {a.oid._name: a.value for a in _ca(built).subject}
    assert subject == {"commonName": f"mas-memory {stack} CA", "organizationName": "mas-memory"}
    for host_name in built.stack.config.used_hosts:
        request = built.one(CERT_REQUEST, f"tls-{host_name}-csr")
        assert request.inputs["subject"] == {"commonName": host_name, "organization": "mas-memory"}
