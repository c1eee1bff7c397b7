"""Certificate credentials (private_key_jwt): a self-signed certificate registered through a world
file, used by MSAL (PS256 + x5t#S256, and RS256 + x5t) and by hand-made assertions."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import WorldFileError, load_world_file
from tests.emulator.identity_helpers import (
    GRAPH_DEFAULT,
    aadsts,
    authority,
    cca,
    claims,
    session,
    tenant,
)

CERT_APP = "e5555555-5555-4555-8555-555555555555"
WORLD = """
[settings]
propagation_delay = "3m"

[[tenant]]
domain = "partner.com"
kind = "partner"
  [[tenant.app]]
  display_name = "Certificate app"
  client_id = "{app}"
  certificate = "certs/app.pem"
  admin_agents = true
  application_permissions = ["User.Read.All"]

[[tenant]]
domain = "customer.com"
partner = "partner.com"
"""


@dataclass(frozen=True)
class Credential:
    key_pem: str
    cert_pem: str
    cert_der: bytes

    @property
    def sha1_hex(self) -> str:
        return hashlib.sha1(self.cert_der).hexdigest()

    def x5t(self) -> str:
        return base64.urlsafe_b64encode(hashlib.sha1(self.cert_der).digest()).decode()


def make_credential(name: str = "cspgraph test app") -> Credential:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return Credential(
        key_pem,
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        cert.public_bytes(serialization.Encoding.DER),
    )


@pytest.fixture(scope="module")
def registered() -> Credential:
    return make_credential()


@pytest.fixture(scope="module")
def cert_emu(
    tmp_path_factory: pytest.TempPathFactory, registered: Credential
) -> Iterator[Emulator]:
    """The world file lives next to its certificate, referred to by a relative path."""
    root = tmp_path_factory.mktemp("cert-world")
    (root / "certs").mkdir()
    (root / "certs" / "app.pem").write_text(registered.cert_pem)
    world_file = root / "world.toml"
    world_file.write_text(WORLD.format(app=CERT_APP))
    with Emulator(lambda: load_world_file(world_file), state_dir=root / "state") as emu:
        yield emu


def test_world_file_registers_the_certificate(cert_emu: Emulator, registered: Credential) -> None:
    found = cert_emu.world.application(CERT_APP)
    assert found is not None
    key_credentials = found[1]["keyCredentials"]
    assert [k["customKeyIdentifier"] for k in key_credentials] == [registered.sha1_hex.upper()]


def test_msal_with_a_certificate_ps256(cert_emu: Emulator, registered: Credential) -> None:
    app = cca(
        cert_emu,
        "customer.com",
        client_id=CERT_APP,
        credential={"private_key": registered.key_pem, "public_certificate": registered.cert_pem},
    )
    result = app.acquire_token_for_client([GRAPH_DEFAULT])
    assert "access_token" in result, result
    c = claims(result["access_token"])
    assert c["appidacr"] == "2"
    assert c["tid"] == tenant(cert_emu, "customer.com").id
    assert c["roles"] == ["User.Read.All"]


def test_msal_with_a_thumbprint_rs256(cert_emu: Emulator, registered: Credential) -> None:
    app = cca(
        cert_emu,
        "partner.com",
        client_id=CERT_APP,
        credential={"private_key": registered.key_pem, "thumbprint": registered.sha1_hex},
    )
    result = app.acquire_token_for_client([GRAPH_DEFAULT])
    assert "access_token" in result, result
    assert claims(result["access_token"])["appidacr"] == "2"


def _assertion(
    emu: Emulator, credential: Credential, *, x5t: str | None = None, **overrides: Any
) -> str:
    now = time.time()
    payload = {
        "aud": f"{authority(emu, 'customer.com')}/oauth2/v2.0/token",
        "iss": CERT_APP,
        "sub": CERT_APP,
        "jti": str(uuid.uuid4()),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
        **overrides,
    }
    return jwt.encode(
        payload, credential.key_pem, algorithm="RS256", headers={"x5t": x5t or credential.x5t()}
    )


def _post(emu: Emulator, assertion: str, tenant_ref: str = "customer.com") -> Any:
    return session(emu).post(
        f"{authority(emu, tenant_ref)}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CERT_APP,
            "scope": GRAPH_DEFAULT,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )


def test_hand_made_assertion_with_the_domain_form_of_the_audience(
    cert_emu: Emulator, registered: Credential
) -> None:
    aud = f"{cert_emu.endpoints.authority_host}/CUSTOMER.com/oauth2/token"  # v1, domain form
    r = _post(cert_emu, _assertion(cert_emu, registered, aud=aud))
    assert r.status_code == 200, r.text


def test_assertion_signed_by_another_key_is_700027(
    cert_emu: Emulator, registered: Credential
) -> None:
    impostor = make_credential("impostor")
    forged = _assertion(cert_emu, impostor, x5t=registered.x5t())
    r = _post(cert_emu, forged)
    assert (r.status_code, r.json()["error"], aadsts(r.json())) == (401, "invalid_client", 700027)
    assert "signature" in r.json()["error_description"]


def test_unregistered_certificate_is_700027(cert_emu: Emulator) -> None:
    stranger = make_credential("stranger")
    r = _post(cert_emu, _assertion(cert_emu, stranger))
    assert (r.status_code, aadsts(r.json())) == (401, 700027)
    assert "not registered" in r.json()["error_description"]


def test_expired_assertion_is_700024(cert_emu: Emulator, registered: Credential) -> None:
    old = time.time() - 3600
    r = _post(cert_emu, _assertion(cert_emu, registered, nbf=old, iat=old, exp=old + 600))
    assert (r.status_code, aadsts(r.json())) == (401, 700024)


def test_assertion_for_another_audience_is_700023(
    cert_emu: Emulator, registered: Credential
) -> None:
    wrong = f"{authority(cert_emu, 'partner.com')}/oauth2/v2.0/token"
    r = _post(cert_emu, _assertion(cert_emu, registered, aud=wrong))
    assert (r.status_code, aadsts(r.json())) == (401, 700023)


def test_assertion_for_another_client_is_700021(cert_emu: Emulator, registered: Credential) -> None:
    assertion = _assertion(cert_emu, registered, sub="f6666666-6666-4666-8666-666666666666")
    r = _post(cert_emu, assertion)
    assert (r.status_code, aadsts(r.json())) == (401, 700021)


def test_world_file_with_a_missing_certificate_names_the_key(tmp_path: Path) -> None:
    world_file = tmp_path / "world.toml"
    world_file.write_text(WORLD.format(app=CERT_APP))
    with pytest.raises(WorldFileError, match=r"tenant\[0\]\.app\[0\]\.certificate"):
        load_world_file(world_file)
