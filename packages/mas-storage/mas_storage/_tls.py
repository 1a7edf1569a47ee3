"""TLS, once for every networked adapter: the CA setting, a verified ``ssl.SSLContext``, the
explicit switch that turns verification off, and certificate failures mapped to one error.

* :class:`TlsSettings` is the base of every networked adapter's settings model. It adds
  ``tls_ca`` (the CA certificate that signs the servers': a file path **or** the PEM text; fed
  by the stack output ``tls_ca``, which is a path on the local stack and the PEM on the lab)
  and ``tls_insecure`` (encrypt without verifying, with a WARNING at every connect). Whether a
  connection is encrypted at all is said by the adapter's URL, in each driver's own words
  (``sslmode=verify-full``, ``rediss://``, ``bolt+s://``, ``https://``); a model refuses a CA
  or the insecure switch next to a plaintext URL, so a password never crosses the wire in the
  clear because of a typo.
* :meth:`TlsSettings.ssl_context` builds the verified context (hostname or IP checked, TLS 1.2
  at least); :meth:`TlsSettings.ca_pem` and :meth:`TlsSettings.ca_file` give the CA to drivers
  that want text (redis-py, gRPC) or a file (libpq: a PEM is written once to a private 0600
  file, named by its digest).
* :func:`certificate_error` finds a certificate-verification failure anywhere in a driver's
  exception chain (Python's ``ssl.SSLCertVerificationError``, or libpq's text) and says, with
  no secret, whether the server certificate was not trusted or does not match the host or IP
  connected to. The core's error translation (:mod:`mas_storage._operations`) calls it first,
  for every adapter.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Self

from pydantic import BeforeValidator, Field, model_validator

from ._exceptions import StorageConnectionError
from ._settings import AdapterSettings, StackOutput

__all__ = [
    "CA_OUTPUT",
    "CaCertificate",
    "CertificateFailure",
    "TlsSettings",
    "certificate_error",
    "certificate_failure",
]

#: The stack output that carries the stack's CA: a path (local stack) or the PEM (lab).
CA_OUTPUT = "tls_ca"
_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
#: OpenSSL's verify codes for a certificate that does not name the host or IP connected to.
#: (X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH)
_MISMATCH_CODES = frozenset({62, 64})
logger = logging.getLogger("mas_storage.tls")


def _check_ca(value: Any) -> Any:
    """A PEM text (checked to load) or the path of a readable PEM file (kept as given)."""
    if value is None or not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        raise ValueError("must be a CA certificate: a PEM file path or the PEM text")
    if text.startswith("-----BEGIN"):
        if _PEM_BEGIN not in text:
            raise ValueError("holds PEM text without a CERTIFICATE block")
        try:
            ssl.create_default_context(cadata=text)
        except (ssl.SSLError, ValueError):
            raise ValueError("holds PEM text that is not a valid certificate") from None
        return text + "\n"
    path = Path(text).expanduser()
    try:
        content = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise ValueError(f"names no readable file: {path} ({exc.strerror})") from None
    if _PEM_BEGIN not in content:
        raise ValueError(f"names a file that holds no PEM certificate: {path}")
    return str(path)


#: A CA certificate: the path of a PEM file, or the PEM text itself (``-----BEGIN ...``).
CaCertificate = Annotated[str, BeforeValidator(_check_ca)]


class TlsSettings(AdapterSettings):
    """The settings every networked adapter shares: whom to trust, and the insecure switch.

    A subclass says whether its configured connection is encrypted (:meth:`uses_tls`: from
    its URL's scheme or options; ``None`` when it has no network, e.g. Qdrant embedded).
    """

    tls_ca: Annotated[CaCertificate | None, StackOutput(CA_OUTPUT)] = Field(
        None,
        description="CA certificate that signed the server's: a PEM file path or the PEM "
        "text (the local stack writes a path, the lab's outputs the PEM); unset: the system's "
        "trust store. TLS itself is asked for by the URL",
    )
    tls_insecure: bool = Field(
        False,
        description="encrypt without verifying the server certificate (a WARNING is logged "
        "at every connect): for diagnosis only",
    )

    def uses_tls(self) -> bool | None:
        """Whether the configured connection is encrypted; ``None``: no network at all."""
        return None

    @model_validator(mode="after")
    def _insecure_needs_an_encrypted_url(self) -> Self:
        # tls_ca beside a plaintext URL is not refused: it usually comes from the outputs
        # file while the URL was given explicitly (the URL decides). tls_insecure is always
        # explicit, and meaningless without TLS.
        if self.uses_tls() is False and self.tls_insecure:
            raise ValueError(
                "tls_insecure is set but the connection is plaintext: ask for TLS in the url "
                f"({self.tls_hint}), or unset tls_insecure"
            )
        return self

    #: How this backend's URL asks for TLS, for messages (each subclass names its own).
    tls_hint: ClassVar[str] = "a TLS scheme or option"

    # -- what the drivers need ------------------------------------------------------------

    def ca_pem(self) -> str | None:
        """The CA as PEM text (read from the file when ``tls_ca`` is a path), or ``None``."""
        ca = self.tls_ca
        if ca is None:
            return None
        if ca.lstrip().startswith("-----BEGIN"):
            return ca
        return Path(ca).read_text(encoding="ascii")

    def ca_file(self) -> str | None:
        """The CA as a file path, for drivers that read a file only (libpq's ``sslrootcert``).

        A PEM given as text is written once to ``<tmp>/mas-storage-ca-<uid>/<sha256>.pem``
        (directory 0700, file 0600, atomically) and that path is returned.
        """
        ca = self.tls_ca
        if ca is None or not ca.lstrip().startswith("-----BEGIN"):
            return ca
        return _pem_file(ca)

    def warn_if_insecure(self, where: str = "") -> None:
        """Log the WARNING of ``tls_insecure`` (for drivers given options, not a context)."""
        if self.tls_insecure:
            warn_insecure(self, where)

    def ssl_context(self, where: str = "", *, verify: bool = True) -> ssl.SSLContext:
        """A client context: the server certificate verified against ``tls_ca`` (else the
        system's store), hostname or IP checked, TLS 1.2 at least. With ``tls_insecure`` (or
        ``verify=False``, a driver's own "unverified" scheme): no verification, and a WARNING
        naming ``where`` (never a secret)."""
        if self.tls_insecure or not verify:
            warn_insecure(self, where)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cadata=self.ca_pem())
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


def warn_insecure(settings: TlsSettings, where: str) -> None:
    """The WARNING every connect with ``tls_insecure`` logs."""
    model = type(settings)
    env = model.env_name("tls_insecure") or "tls_insecure"
    logger.warning(
        "TLS certificate verification is OFF for %s (%s): the connection is encrypted but "
        "the server is not authenticated; unset it and give tls_ca instead",
        where or model.__name__,
        env,
    )


def _pem_file(pem: str) -> str:
    digest = hashlib.sha256(pem.encode()).hexdigest()[:32]
    folder = Path(tempfile.gettempdir()) / f"mas-storage-ca-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid():
        raise StorageConnectionError(f"{folder} is not a private directory of this user")
    if info.st_mode & 0o077:
        folder.chmod(0o700)
    path = folder / f"{digest}.pem"
    if path.is_file() and path.read_text(encoding="ascii", errors="replace") == pem:
        return str(path)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(pem)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)


# -- certificate failures ------------------------------------------------------------------------


class CertificateFailure(NamedTuple):
    """Why a server certificate was refused: ``untrusted`` or ``mismatch``, and the reason."""

    kind: Literal["untrusted", "mismatch"]
    reason: str

    def describe(self) -> str:
        if self.kind == "mismatch":
            return (
                f"the server certificate does not match the host or IP address connected to "
                f"({self.reason}): connect by a name or address the certificate lists"
            )
        return (
            f"the server certificate was not trusted ({self.reason}): give the CA that "
            "signed it as tls_ca (the stack output 'tls_ca')"
        )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, the members of exception groups, and the driver
    errors adapters keep as ``.orig``; each once."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (current.__cause__, current.__context__, getattr(current, "orig", None)):
            if isinstance(linked, BaseException):
                todo.append(linked)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))


def certificate_failure(exc: BaseException) -> CertificateFailure | None:
    """The certificate-verification failure in ``exc``'s chain, if there is one."""
    for link in _chain(exc):
        # The ssl module's own error. A wrapper that subclasses it without its attributes
        # (aiohttp's ClientConnectorCertificateError) keeps the real one as its cause.
        if isinstance(link, ssl.SSLCertVerificationError) and hasattr(link, "verify_code"):
            reason = str(link.verify_message or link.reason or "certificate verify failed")
            code = link.verify_code
            mismatch = code in _MISMATCH_CODES or "mismatch" in reason.lower()
            return CertificateFailure("mismatch" if mismatch else "untrusted", reason)
    for link in _chain(exc):  # drivers that give text only (libpq, some wrappers)
        text = str(link)
        if "does not match host name" in text:  # libpq's verify-full
            return CertificateFailure("mismatch", _line_with(text, "does not match host name"))
        if "certificate verify failed" in text.lower() or "CERTIFICATE_VERIFY_FAILED" in text:
            lowered = text.lower()
            if "mismatch" in lowered:
                return CertificateFailure("mismatch", _line_with(text, "mismatch"))
            return CertificateFailure("untrusted", _line_with(text, "certificate verify failed"))
    return None


def _line_with(text: str, needle: str) -> str:
    """The part of ``text`` from its line holding ``needle`` (case-insensitive), trimmed."""
    for line in text.splitlines():
        at = line.lower().find(needle.lower())
        if at >= 0:
            start = line.rfind(":", 0, at)
            return line[start + 1 :].strip().rstrip(")") if start >= 0 else line.strip()
    return needle


def certificate_error(exc: BaseException, where: str = "") -> StorageConnectionError | None:
    """A :class:`StorageConnectionError` saying why the server certificate was refused, or
    ``None`` when ``exc`` is no certificate failure. The message holds the verifier's reason
    and ``where`` (an address), never the driver's whole text (which may quote a URL)."""
    failure = certificate_failure(exc)
    if failure is None:
        return None
    at = f" at {where}" if where else ""
    return StorageConnectionError(f"TLS{at}: {failure.describe()}")
