"""Applications as the token endpoint sees them: lookup, client authentication, redirect URIs.

Clients authenticate with a secret (form body or HTTP Basic) or a certificate assertion
(private_key_jwt: RS256 with ``x5t`` or PS256 with ``x5t#S256``, matched against the certificates
registered on the app). A client's own clock is the real one, so assertion lifetimes are checked
against wall time, not the world clock that tests move forward (world time is cloud time).
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlsplit

import jwt
from cryptography import x509

from csp_emulator import wellknown
from csp_emulator.identity import errors
from csp_emulator.world.model import Tenant, World

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Microsoft's own tenant, owner of the first-party apps.
MICROSOFT_TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
# Seconds of clock skew tolerated on a client assertion's nbf/exp.
ASSERTION_SKEW = 300
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})

ACR_PUBLIC = "0"
ACR_SECRET = "1"
ACR_CERTIFICATE = "2"


@dataclass(frozen=True)
class Client:
    """An application registration and where it lives."""

    app_id: str
    display_name: str
    home_tenant_id: str
    home: Tenant | None  # None for Microsoft's first-party apps
    registration: dict[str, Any] = field(hash=False, compare=False)
    first_party: bool = False

    @property
    def multi_tenant(self) -> bool:
        return self.registration.get("signInAudience") != "AzureADMyOrg"

    @property
    def public(self) -> bool:
        """May redeem user grants without a credential ("allow public client flows")."""
        return self.first_party or bool(self.registration.get("isFallbackPublicClient"))

    @property
    def has_credentials(self) -> bool:
        return bool(self.registration.get("_secrets") or self.registration.get("_certificates"))

    def redirect_uris(self) -> list[str]:
        reg = self.registration
        return [
            *reg.get("web", {}).get("redirectUris", []),
            *reg.get("publicClient", {}).get("redirectUris", []),
            *reg.get("spa", {}).get("redirectUris", []),
        ]

    def required_permissions(self, resource_app_id: str, kind: str) -> list[str]:
        """Names of the permissions of ``kind`` ("Role" or "Scope") the app asks for."""
        names: list[str] = []
        for entry in self.registration.get("requiredResourceAccess", []):
            if entry.get("resourceAppId") != resource_app_id:
                continue
            for access in entry.get("resourceAccess", []):
                if access.get("type") != kind:
                    continue
                permission = wellknown.PERMISSIONS_BY_ID.get(access.get("id", ""))
                if permission is not None:
                    names.append(permission.name)
        return names


def graph_cli_client(authority_host: str) -> Client:
    """ "Microsoft Graph Command Line Tools": a public client every tenant can sign in to."""
    registration: dict[str, Any] = {
        "appId": wellknown.GRAPH_CLI_APP_ID,
        "displayName": "Microsoft Graph Command Line Tools",
        "signInAudience": "AzureADMultipleOrgs",
        "isFallbackPublicClient": True,
        "publicClient": {
            "redirectUris": [
                "http://localhost",
                f"{authority_host}/common/oauth2/nativeclient",
                "https://login.microsoftonline.com/common/oauth2/nativeclient",
            ]
        },
        "_secrets": [],
        "_certificates": [],
    }
    return Client(
        app_id=wellknown.GRAPH_CLI_APP_ID,
        display_name=registration["displayName"],
        home_tenant_id=MICROSOFT_TENANT_ID,
        home=None,
        registration=registration,
        first_party=True,
    )


def find_client(world: World, client_id: str, authority_host: str) -> Client | None:
    found = world.application(client_id.lower())
    if found is not None:
        home, app = found
        return Client(app["appId"], app.get("displayName", ""), home.id, home, app)
    if client_id.lower() == wellknown.GRAPH_CLI_APP_ID:
        return graph_cli_client(authority_host)
    return None


# -- client authentication -----------------------------------------------------------------------


@dataclass(frozen=True)
class AuthenticatedClient:
    client: Client
    acr: str  # appidacr: "0" public, "1" secret, "2" certificate


def basic_credentials(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """(client_id, secret) from `Authorization: Basic`, form-url-decoded as RFC 6749 §2.3.1 says."""
    value = headers.get("authorization", "")
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(user), unquote_plus(password)


def requested_client_id(form: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    if form.get("client_id"):
        return form["client_id"]
    basic = basic_credentials(headers)
    if basic is not None:
        return basic[0]
    assertion = form.get("client_assertion")
    if assertion:
        try:
            issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            return None
        return str(issuer) if issuer else None
    return None


def authenticate(
    client: Client,
    form: Mapping[str, str],
    headers: Mapping[str, str],
    *,
    audiences: Iterable[str],
    now: float,
    allow_public: bool,
) -> AuthenticatedClient:
    """Check the credential the request carries; raises AADError (invalid_client, 401)."""
    basic = basic_credentials(headers)
    secret = form.get("client_secret") or (basic[1] if basic else None)
    assertion = form.get("client_assertion")
    if (secret or assertion) and client.public and not client.has_credentials:
        raise errors.public_client_with_credential()
    if secret:
        check_secret(client, secret, now)
        return AuthenticatedClient(client, ACR_SECRET)
    if assertion:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise errors.malformed_assertion(f"client_assertion_type must be '{ASSERTION_TYPE}'.")
        check_assertion(client, assertion, audiences)
        return AuthenticatedClient(client, ACR_CERTIFICATE)
    if allow_public and client.public:
        return AuthenticatedClient(client, ACR_PUBLIC)
    raise errors.no_client_credential()


def check_secret(client: Client, secret: str, now: float) -> None:
    for stored in client.registration.get("_secrets", []):
        text = str(stored.get("secretText") or "")
        if text and hmac.compare_digest(text.encode(), secret.encode()):
            if stored.get("end") is not None and now > float(stored["end"]):
                raise errors.expired_client_secret(client.app_id)
            return
    raise errors.bad_client_secret(client.app_id)


def _unpadded(value: str) -> str:
    # MSAL pads its thumbprints; the JOSE spec does not. Both name the same certificate.
    return value.rstrip("=")


def check_assertion(client: Client, assertion: str, audiences: Iterable[str]) -> None:
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise errors.malformed_assertion(str(exc)) from None
    alg = header.get("alg")
    if alg not in ("RS256", "PS256"):
        raise errors.malformed_assertion(f"Unsupported signing algorithm '{alg}'.")
    wanted_s256 = header.get("x5t#S256")
    wanted_sha1 = header.get("x5t")
    certificate = None
    for cert in client.registration.get("_certificates", []):
        if (wanted_s256 and _unpadded(str(wanted_s256)) == _unpadded(cert["x5t#S256"])) or (
            wanted_sha1 and _unpadded(str(wanted_sha1)) == _unpadded(cert["x5t"])
        ):
            certificate = cert
            break
    if certificate is None:
        raise errors.assertion_signature(
            "The certificate with identifier used to sign the client assertion is not registered "
            f"on application. [Reason - The key was not found., Thumbprint of key used by client: "
            f"'{wanted_s256 or wanted_sha1}'. Please visit the Azure Portal, Graph Explorer or "
            "directly use MS Graph to see configured keys for app Id "
            f"'{client.app_id}'.]"
        )
    public_key = x509.load_der_x509_certificate(certificate["der"]).public_key()
    try:
        claims = jwt.decode(
            assertion,
            public_key,  # type: ignore[arg-type]
            algorithms=[alg],
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise errors.assertion_signature("Client assertion failed signature validation.") from None
    except jwt.PyJWTError as exc:
        raise errors.malformed_assertion(str(exc)) from None
    if claims.get("iss") != client.app_id or claims.get("sub") != client.app_id:
        raise errors.assertion_client_mismatch()
    accepted = {a.lower() for a in audiences}
    audience = claims.get("aud")
    candidates = audience if isinstance(audience, list) else [audience]
    if not any(isinstance(a, str) and a.lower() in accepted for a in candidates):
        raise errors.assertion_audience(str(audience))
    wall = time.time()
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise errors.malformed_assertion("The assertion has no 'exp' claim.")
    if wall > exp + ASSERTION_SKEW:
        raise errors.assertion_not_valid("The assertion has expired.")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and wall < nbf - ASSERTION_SKEW:
        raise errors.assertion_not_valid("The assertion is not yet valid.")


# -- redirect URIs -------------------------------------------------------------------------------


def _path(path: str) -> str:
    return path or "/"


def redirect_uri_allowed(requested: str, registered: Iterable[str]) -> bool:
    """Exact match, except that an http loopback URI matches on any port (Entra's loopback
    rule: native apps listen on whatever port is free). The loopback rule compares host, path
    and query only, so a URI with a user part (``http://evil@localhost/``), which no
    registration holds, is refused before it: browsers treat such URIs unlike the host they
    seem to name, and the code would travel in it."""
    try:
        want = urlsplit(requested)
        _ = want.port  # raises on a malformed port
    except ValueError:
        return False
    if want.username is not None or want.password is not None or "@" in want.netloc:
        return False
    for candidate in registered:
        if candidate == requested:
            return True
        have = urlsplit(candidate)
        if (
            want.scheme == have.scheme == "http"
            and (want.hostname or "") in LOOPBACK_HOSTS
            and want.hostname == have.hostname
            and _path(want.path) == _path(have.path)
            and want.query == have.query
        ):
            return True
    return False
