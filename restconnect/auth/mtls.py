"""Mutual TLS: a client certificate, and a CA bundle that really wins.

requests takes a client certificate only as file paths and cannot be given a
key passphrase, so an encrypted PEM key or a PKCS#12 bundle is decrypted with
``cryptography`` into a private temporary folder (mode 0700, files 0600) that
is removed on :meth:`MTLSAuth.close`, when the handler is collected, and at
interpreter exit.

The CA bundle is exposed as ``handler.verify`` and the certificate pair as
``handler.cert`` (read on first use); ``HttpClient`` passes both on every
request, because
requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override a
session-level ``verify``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import shutil
import ssl
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field as PydanticField

from restconnect.auth import register_auth
from restconnect.auth.base import AuthMethod, Field
from restconnect.exceptions import AuthError

__all__ = ["ClientCertificate", "MTLSAuth", "MTLSOptions", "explain_tls_error"]

logger = logging.getLogger(__name__)


class MTLSOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Warn when the client certificate expires within this many days.
    warn_days: int = PydanticField(30, ge=0)


class ClientCertificate:
    """A loaded client certificate and key, as files requests can use.

    Attributes:
        cert_path, key_path: PEM files to hand to requests.
        certificate: the ``cryptography`` certificate object.
    """

    def __init__(self, cert_path: str, key_path: str, certificate: Any,
                 temp_dir: str | None = None):
        self.cert_path = cert_path
        self.key_path = key_path
        self.certificate = certificate
        self._cleanup = (weakref.finalize(self, _remove_dir, temp_dir)
                         if temp_dir else None)

    def close(self) -> None:
        """Remove any decrypted temporary files now."""
        if self._cleanup is not None:
            self._cleanup()

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def issuer(self) -> str:
        return self.certificate.issuer.rfc4514_string()

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    @property
    def fingerprint(self) -> str:
        from cryptography.hazmat.primitives import hashes

        return self.certificate.fingerprint(hashes.SHA256()).hex()

    def days_left(self, now: dt.datetime | None = None) -> float:
        moment = now or dt.datetime.now(dt.timezone.utc)
        return (self.not_after - moment).total_seconds() / 86400


def load_pem(cert_file: str, key_file: str | None, passphrase: str | None,
             ) -> ClientCertificate:
    """Load a PEM certificate and key; decrypt an encrypted key to a temp file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_bytes = _read(cert_file, "client_cert")
    try:
        certificate = x509.load_pem_x509_certificate(cert_bytes)
    except ValueError:
        raise ValueError(f"client_cert {cert_file} holds no PEM certificate") from None
    key_source = key_file or cert_file
    key_bytes = _read(key_source, "client_key")
    encrypted = b"ENCRYPTED" in key_bytes
    try:
        key = serialization.load_pem_private_key(
            key_bytes, passphrase.encode() if passphrase and encrypted else None)
    except TypeError:
        raise ValueError(f"the key in {key_source} is encrypted: give the passphrase"
                         ) from None
    except ValueError:
        hint = "wrong passphrase, or " if encrypted else ""
        raise ValueError(f"cannot read the private key in {key_source} "
                         f"({hint}not a PEM private key)") from None
    _check_pair(certificate, key, cert_file)
    if not encrypted:
        return ClientCertificate(cert_file, key_source, certificate)
    return _to_temp_files(certificate, key, [])


def load_pkcs12(bundle_file: str, passphrase: str | None) -> ClientCertificate:
    """Load a PKCS#12 (.p12/.pfx) bundle into temporary PEM files."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    data = _read(bundle_file, "pkcs12")
    try:
        key, certificate, extra = pkcs12.load_key_and_certificates(
            data, passphrase.encode() if passphrase else None)
    except ValueError:
        raise ValueError(f"cannot open the PKCS#12 bundle {bundle_file} "
                         "(wrong passphrase, or not a PKCS#12 file)") from None
    if key is None or certificate is None:
        raise ValueError(f"the PKCS#12 bundle {bundle_file} lacks a key or certificate")
    return _to_temp_files(certificate, key, list(extra or []))


def _to_temp_files(certificate: Any, key: Any, chain: list[Any]) -> ClientCertificate:
    from cryptography.hazmat.primitives import serialization

    folder = tempfile.mkdtemp(prefix="restconnect-mtls-")
    cert_path = os.path.join(folder, "client.crt")
    key_path = os.path.join(folder, "client.key")
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM)
                   for c in [certificate, *chain])
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write_private(cert_path, pem)
    _write_private(key_path, key_pem)
    return ClientCertificate(cert_path, key_path, certificate, temp_dir=folder)


def _write_private(path: str, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _remove_dir(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _read(path: str, field: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ValueError(f"{field}: cannot read {path}: {exc.strerror}") from None


def _check_pair(certificate: Any, key: Any, cert_file: str) -> None:
    from cryptography.hazmat.primitives import serialization

    def public(obj: Any) -> bytes:
        return obj.public_bytes(serialization.Encoding.DER,
                                serialization.PublicFormat.SubjectPublicKeyInfo)

    if public(certificate.public_key()) != public(key.public_key()):
        raise ValueError(f"the private key does not belong to the certificate in "
                         f"{cert_file}")


@register_auth
class MTLSAuth(AuthMethod):
    """Present a client certificate in the TLS handshake.

    Combine it with another method when the API also wants a token
    (``auth: [mtls, oauth2]``, as open-banking APIs do).

    Example spec::

        auth:
          method: mtls
          env: {client_cert: BANK_CLIENT_CERT, client_key: BANK_CLIENT_KEY,
                passphrase: BANK_KEY_PASSPHRASE, server_ca: BANK_CA_BUNDLE}

    ``connect(..., ca_bundle=path)`` sets the server CA for every method;
    ``server_ca`` does it from the spec's environment variables.
    """

    name = "mtls"
    fields = (
        Field("client_cert", required=False,
              help="PEM file of the client certificate (may also hold the key)"),
        Field("client_key", required=False, help="PEM file of the private key"),
        Field("pkcs12", required=False,
              help="PKCS#12 (.p12/.pfx) bundle instead of PEM files"),
        Field("passphrase", secret=True, required=False,
              help="passphrase of the encrypted key or PKCS#12 bundle"),
        Field("server_ca", required=False,
              help="CA file that verifies the server (instead of the system's)"),
    )
    Options = MTLSOptions

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._material: ClientCertificate | None = None
        self._lock = threading.Lock()
        self.verify: str | None = self._ca_bundle()

    @property
    def material(self) -> ClientCertificate:
        """The loaded certificate; read (and decrypted) on first use."""
        with self._lock:
            if self._material is None:
                try:
                    self._material = self._load()
                except ValueError as exc:
                    raise AuthError(str(exc), connector=self.context.connector,
                                    method=self.name) from None
                self._warn_if_expiring(self._material)
            return self._material

    @property
    def cert(self) -> tuple[str, str]:
        """(certificate file, key file), which ``HttpClient`` passes per request."""
        material = self.material
        return material.cert_path, material.key_path

    def load(self) -> ClientCertificate:
        """Read the certificate now, to report a wrong path or passphrase early."""
        return self.material

    def _load(self) -> ClientCertificate:
        passphrase = self.credential("passphrase")
        bundle = self.credential("pkcs12")
        if bundle:
            return load_pkcs12(bundle, passphrase)
        cert = self.credential("client_cert")
        if not cert:
            raise ValueError("give client_cert (and client_key) or pkcs12")
        return load_pem(cert, self.credential("client_key"), passphrase)

    def _ca_bundle(self) -> str | None:
        bundle = self.credential("server_ca")
        if bundle and not Path(bundle).expanduser().exists():
            raise AuthError(f"server_ca {bundle} does not exist",
                            connector=self.context.connector, method=self.name)
        return str(Path(bundle).expanduser()) if bundle else None

    def _warn_if_expiring(self, material: ClientCertificate) -> None:
        days = material.days_left()
        when = material.not_after.date().isoformat()
        if days < 0:
            logger.warning("%s: the client certificate %s expired on %s; servers "
                           "will refuse it", self.context.connector, material.subject,
                           when)
        elif days < self.options.warn_days:
            logger.warning("%s: the client certificate %s expires in %d days (%s)",
                           self.context.connector, material.subject, int(days), when)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request

    def close(self) -> None:
        """Remove the decrypted temporary key, if one was written."""
        if self._material is not None:
            self._material.close()

    def identity_key(self) -> str:
        """A digest of the certificate file, so a new certificate is a new identity."""
        source = self.credential("pkcs12") or self.credential("client_cert") or ""
        try:
            content = Path(source).expanduser().read_bytes()
        except OSError:
            content = source.encode()
        return hashlib.sha256(self.name.encode() + b"\0" + content).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "subject": self.material.subject,
                "issuer": self.material.issuer,
                "not_after": self.material.not_after.isoformat(),
                "server_ca": self._effective_bundle() or "(default)"}

    def explain_transport_error(self, error: BaseException) -> str | None:
        """A sentence saying which side of the handshake refused what."""
        return explain_tls_error(error, self._material, self._effective_bundle())

    def _effective_bundle(self) -> str | None:
        http = self.context.http
        return self.verify or (getattr(http, "ca_bundle", None) if http else None)


# OpenSSL's alert and reason texts, as Python's ssl module reports them.
_SERVER_REFUSED = (
    ("certificate required", "the server requires a client certificate and none "
                             "was sent"),
    ("unknown ca", "the server refused our client certificate: it does not trust "
                   "the CA that issued it ({issuer})"),
    ("certificate expired", "the server refused our client certificate: it "
                            "expired on {not_after}"),
    ("certificate revoked", "the server refused our client certificate: revoked"),
    ("bad certificate", "the server refused our client certificate ({subject})"),
    ("unsupported certificate", "the server refused our client certificate: "
                                "unsupported type or key usage"),
    ("access denied", "the server refused our client certificate: access denied"),
    ("handshake failure", "the TLS handshake failed: the server refused our "
                          "client certificate or the offered parameters"),
)
_CLOSED = ("eof occurred", "unexpected eof", "connection reset", "connection aborted",
           "broken pipe", "remotedisconnected")


def explain_tls_error(error: BaseException, material: ClientCertificate | None = None,
                      ca_bundle: str | None = None) -> str | None:
    """Describe a TLS failure for people: who refused what, and what to check.

    Returns None when ``error`` does not look like a TLS failure.
    """
    chain = _chain_text(error)
    lowered = chain.lower()
    facts = _facts(material)
    if "certificate_verify_failed" in lowered or "certificate verify failed" in lowered:
        reason = _verify_reason(error) or "verification failed"
        bundle = ca_bundle or "the default CA bundle"
        return (f"TLS failed: the server's certificate is not trusted by {bundle} "
                f"({reason}); set ca_bundle to the CA that issued it")
    for marker, text in _SERVER_REFUSED:
        if marker in lowered:
            return "TLS failed: " + text.format(**facts) + _expired_note(material)
    closed = any(marker in lowered for marker in _CLOSED)
    if closed and material is None:
        return ("TLS failed: the server closed the connection during the handshake; "
                "it may require a client certificate, and none was sent")
    if closed:
        return ("TLS failed: the server closed the connection during the handshake; "
                "it most likely refused our client certificate "
                f"(subject {facts['subject']}, issuer {facts['issuer']})"
                + _expired_note(material))
    if isinstance(_find(error, ssl.SSLError), ssl.SSLError):
        return f"TLS failed: {_find(error, ssl.SSLError)}"
    return None


def _facts(material: ClientCertificate | None) -> dict[str, str]:
    if material is None:
        return {"subject": "?", "issuer": "?", "not_after": "?"}
    return {"subject": material.subject, "issuer": material.issuer,
            "not_after": material.not_after.date().isoformat()}


def _expired_note(material: ClientCertificate | None) -> str:
    if material is not None and material.days_left() < 0:
        return (f"; note: our certificate expired on "
                f"{material.not_after.date().isoformat()}")
    return ""


def _chain_text(error: BaseException) -> str:
    texts: list[str] = []
    seen: set[int] = set()
    stack: list[Any] = [error]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        texts.append(f"{type(item).__name__}: {item}")
        if isinstance(item, BaseException):
            stack.extend([item.__cause__, item.__context__, *item.args])
        reason = getattr(item, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return " | ".join(texts)


def _find(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    stack: list[Any] = [error]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, kind):
            return item
        if isinstance(item, BaseException):
            stack.extend([item.__cause__, item.__context__, *item.args,
                          getattr(item, "reason", None)])
    return None


def _verify_reason(error: BaseException) -> str | None:
    found = _find(error, ssl.SSLCertVerificationError)
    return getattr(found, "verify_message", None) if found is not None else None
