"""The partner-managed app's credential material, and whether Graph already has it.

Set-up (:mod:`cspgraph.partner.setup`) makes a self-signed certificate (:func:`new_certificate`)
or asks Graph for a client secret, and keeps either in a 0600 file. Before adding one it checks
what is already there: a PEM on disk that is still valid for a while (:data:`RENEW_BEFORE`), and
whether the application's ``keyCredentials``/``passwordCredentials`` already hold that certificate
or that secret. Graph never returns a secret, only its first three characters (the ``hint``).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

# A certificate this close to its end is replaced by a new one.
RENEW_BEFORE = timedelta(days=30)


def new_certificate(name: str, days: int = 730) -> tuple[str, x509.Certificate]:
    """A self-signed RSA certificate for the app, as one PEM: private key (PKCS#8) + certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + certificate.public_bytes(serialization.Encoding.PEM)
    return pem.decode(), certificate


def load_pem(path: Path) -> tuple[bytes, x509.Certificate] | None:
    """The PEM at ``path`` when it holds a certificate and an unencrypted private key."""
    try:
        data = path.read_bytes()
        certificate = x509.load_pem_x509_certificate(data)
        serialization.load_pem_private_key(data, password=None)
    except (OSError, ValueError, TypeError):
        return None
    return data, certificate


def still_valid(certificate: x509.Certificate) -> bool:
    return certificate.not_valid_after_utc - datetime.now(UTC) > RENEW_BEFORE


def thumbprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - an identifier


def certificate_registered(
    certificate: x509.Certificate, key_credentials: list[dict[str, Any]]
) -> bool:
    """Whether one of the app's keyCredentials is this certificate. Graph names a certificate
    by its SHA-1 thumbprint in ``customKeyIdentifier`` (base64 of the digest, or its hex as the
    portal shows it) and returns ``key`` on a single object's ``$select=keyCredentials``."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    sha1 = hashlib.sha1(der).digest()  # noqa: S324 - Graph's identifier for a certificate
    names = {sha1.hex().upper(), base64.b64encode(sha1).decode()}
    encoded = base64.b64encode(der).decode()
    for entry in key_credentials:
        identifier = str(entry.get("customKeyIdentifier") or "")
        if identifier.upper() in {n.upper() for n in names} or entry.get("key") == encoded:
            end = entry.get("endDateTime")
            return end is None or _parse_time(str(end)) > datetime.now(UTC)
    return False


def secret_registered(secret: str, password_credentials: list[dict[str, Any]]) -> bool:
    """Whether a live client secret of the app starts like ``secret`` (Graph shows the first
    three characters of each secret as its ``hint``; the secret itself is never returned)."""
    now = datetime.now(UTC)
    for entry in password_credentials:
        end = entry.get("endDateTime")
        if entry.get("hint") == secret[:3] and (end is None or _parse_time(str(end)) > now):
            return True
    return False


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_secret_file(path: Path) -> str | None:
    """The secret kept in the file at ``path``; None when it is missing or empty."""
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
