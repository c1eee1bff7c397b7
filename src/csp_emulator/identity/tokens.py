"""Signing and validating the emulator's JWTs (RS256), and the JWKS that publishes the key.

The key pair is kept in the state directory when there is one, so tokens a client cached survive
an emulator restart. Tokens whose signature checked out are cached per token string: a client
sends the same token thousands of times, and the signature check is the costliest step of serving a
Graph page. A token that fails is never cached: anybody can send any number of distinct bad tokens,
and caching their verdicts let 60 s of random 8 KB tokens grow the emulator from 117 to 501 MB.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from csp_emulator.private_files import write_private_bytes


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class InvalidToken(Exception):
    """A token that does not validate; ``reason`` is one of Graph's 401 messages."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


EMPTY = "Access token is empty."
EXPIRED = "Access token has expired or is not yet valid."
BAD_AUDIENCE = "Access token validation failure. Invalid audience."
INVALID = "Access token validation failure."
BAD_SIGNATURE = "Access token validation failure. Invalid signature."


class SigningKeys:
    """One RSA signing key with a self-signed certificate, as Entra publishes in its JWKS."""

    def __init__(self, state_dir: Path | None = None) -> None:
        key_path = state_dir / "signing-key.pem" if state_dir else None
        if key_path is not None and key_path.exists():
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            assert isinstance(loaded, rsa.RSAPrivateKey)
            self.private_key = loaded
        else:
            self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if key_path is not None:
                pem = self.private_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                write_private_bytes(key_path, pem)
        self.public_key = self.private_key.public_key()
        cert_path = state_dir / "signing-cert.pem" if state_dir else None
        if cert_path is not None and cert_path.exists():
            self.certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        else:
            self.certificate = self._self_signed()
            if cert_path is not None:
                cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        self.x5t = b64url(hashlib.sha1(der).digest())  # noqa: S324 - x5t is SHA-1 by definition
        self.kid = self.x5t
        self._x5c = base64.b64encode(der).decode()
        # Claims of tokens whose signature checked out, oldest first: only tokens this emulator
        # signed, so what it holds is bounded by what was issued, not by what was sent.
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cache_max = 50_000

    def _self_signed(self) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.emulator.cspgraph")])
        now = datetime.now(UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.public_key)
            .serial_number(1)
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .sign(self.private_key, hashes.SHA256())
        )

    def jwk(self, issuer: str | None = None) -> dict[str, Any]:
        numbers = self.public_key.public_numbers()
        key: dict[str, Any] = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.x5t,
            "n": b64url_uint(numbers.n),
            "e": b64url_uint(numbers.e),
            "x5c": [self._x5c],
        }
        if issuer is not None:
            key["issuer"] = issuer
        return key

    def jwks(self, issuer: str | None = None) -> dict[str, Any]:
        return {"keys": [self.jwk(issuer)]}

    def sign(self, claims: dict[str, Any], *, graph_style: bool = False) -> str:
        headers: dict[str, Any] = {"typ": "JWT", "kid": self.kid, "x5t": self.x5t}
        if graph_style:
            # Graph access tokens carry a nonce in the header that makes them unverifiable by
            # anyone but Graph; clients must treat them as opaque (wire-facts §1.7).
            headers["nonce"] = b64url(uuid.uuid4().bytes)
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers=headers)

    @property
    def cached_tokens(self) -> int:
        """How many validated tokens the cache holds (what the hardening tests watch)."""
        return len(self._cache)

    def validate(self, token: str, *, now: float, audiences: frozenset[str]) -> dict[str, Any]:
        """Claims of a token this emulator signed; raises InvalidToken with Graph's reason."""
        if not token:
            raise InvalidToken(EMPTY)
        claims = self._cache.get(token)
        if claims is None:
            claims = self._check_signature(token)  # raises for a bad token, which is not kept
            self._cache[token] = claims
            if len(self._cache) > self._cache_max:
                self._cache.popitem(last=False)
        # Time is checked against the world clock on every use: the clock can be advanced.
        if not (claims.get("nbf", 0) - 300 <= now < claims.get("exp", 0)):
            raise InvalidToken(EXPIRED)
        aud = claims.get("aud")
        if aud not in audiences:
            raise InvalidToken(BAD_AUDIENCE)
        return claims

    def _check_signature(self, token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["RS256"],
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise InvalidToken(BAD_SIGNATURE) from None
        except jwt.PyJWTError:
            raise InvalidToken(INVALID) from None
        return claims


def new_jti() -> str:
    return b64url(uuid.uuid4().bytes)


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT without checking it (for client assertions before key lookup)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    padded = parts[1] + "=" * (-len(parts[1]) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded))
    if not isinstance(value, dict):
        raise ValueError("JWT payload is not an object")
    return value
