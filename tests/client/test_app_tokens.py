"""App-only tokens against the emulator, over real TLS: routing per region, single-flight,
fresh tokens, renewal, errors in the taxonomy, certificates, the CA trap, and no secrets in logs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import DEMO_PARTNERS, demo_world_data
from cspgraph.config import config_from_data
from cspgraph.graph.client import GraphClient, TokenSource
from cspgraph.graph.limits import GraphLimiter
from cspgraph.http.errors import NeedsPersonError, PropagatingError, TransientError
from cspgraph.http.retry import RetryPolicy
from cspgraph.identity import CredentialError, TokenProvider
from tests.client.conftest import (
    EU_CLIENT,
    NA_CLIENT,
    SECRET_ENV,
    Control,
    emulator_config,
    record_requests,
)

MakeEmulator = Callable[..., Emulator]
MakeProvider = Callable[..., TokenProvider]


def claims(token: str) -> dict[str, Any]:
    value: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return value


def control_post(emu: Emulator, path: str, body: dict[str, Any], method: str = "POST") -> None:
    Control(emu).send(method, path, body)


async def test_customers_of_two_regions_get_tokens_from_their_own_partner_identity(
    make_emulator: MakeEmulator, make_provider: MakeProvider, tmp_path: Path
) -> None:
    # An emulator of its own: the session's is shared by every test of this worker, and what it
    # logs below must be this test's tokens alone.
    emu = make_emulator()
    control = Control(emu)
    provider = make_provider(emulator_config(emu, tmp_path))
    na = next(t for t in control.customers("NA") if t["domain"] == "customer.com")
    eu = control.customers("EU")[0]
    na_token, eu_token = await asyncio.gather(
        provider.get_token("customer.com"), provider.get_token(eu["domain"])
    )
    na_claims, eu_claims = claims(na_token), claims(eu_token)
    assert (na_claims["appid"], na_claims["tid"]) == (NA_CLIENT, na["id"])
    assert (eu_claims["appid"], eu_claims["tid"]) == (EU_CLIENT, eu["id"])
    assert na_claims["idtyp"] == eu_claims["idtyp"] == "app"
    assert na_claims["aud"] == "https://graph.microsoft.com"
    assert "User.Read.All" in na_claims["roles"]
    # The emulator agrees: one token for each, each by its own region's app.
    assert [t["client_id"] for t in control.tokens(tenant=na["id"])] == [NA_CLIENT]
    assert [t["client_id"] for t in control.tokens(tenant=eu["id"])] == [EU_CLIENT]
    # The provider is the Graph client's TokenSource.
    source: TokenSource = provider
    assert await source.get_token(na["id"]) == na_token


async def test_app_for_names_each_routed_tenants_app_without_asking_anyone(
    provider: TokenProvider, control: Control
) -> None:
    """The Graph limiter keys Graph's per-app budgets with it (GraphLimiter(app_of=…))."""
    na = next(t for t in control.customers("NA") if t["domain"] == "customer.com")
    eu = control.customers("EU")[0]
    assert provider.app_for(na["id"]) is None  # not routed yet, and no request to find out
    await asyncio.gather(provider.route(na["id"]), provider.route(eu["id"]))
    assert provider.app_for(na["id"]) == NA_CLIENT
    assert provider.app_for(eu["id"]) == EU_CLIENT
    # A Graph client on this provider paces each app's tenants by that app's budgets.
    limiter = GraphClient(provider, graph_url=provider.cloud.graph).limiter
    assert isinstance(limiter, GraphLimiter)
    assert limiter.app_key(eu["id"]) == EU_CLIENT and limiter.app_key(na["id"]) == NA_CLIENT


async def test_a_token_is_served_from_cache_until_renewal_is_due(
    make_emulator: MakeEmulator,
    tmp_path: Path,
    make_provider: MakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = make_emulator()
    control = Control(emu)
    provider = make_provider(emulator_config(emu, tmp_path))
    first = await provider.get_token("customer.com")
    for _ in range(5):
        assert await provider.get_token("customer.com") == first
    assert provider.get_token_sync("customer.com") == first
    assert len(control.tokens(client_id=NA_CLIENT)) == 1
    # 3,400 s later the 1 h token has under MSAL's 5-minute margin left: it is renewed, once.
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3400)
    renewed = await provider.get_token("customer.com")
    assert renewed != first
    assert claims(renewed)["uti"] != claims(first)["uti"]
    assert await provider.get_token("customer.com") == renewed
    assert len(control.tokens(client_id=NA_CLIENT)) == 2


async def test_a_thousand_concurrent_asks_for_fifty_tenants_send_fifty_token_requests(
    make_emulator: MakeEmulator, tmp_path: Path, make_provider: MakeProvider
) -> None:
    # The DAP fleet: every customer tenant gets a token (not so the GDAP half's unconsented).
    emu = make_emulator(demo_world_data(customers=50, gdap=False))
    control = Control(emu)
    customers = control.customers()
    assert len(customers) == 50
    assert {c["region"] for c in customers} == {"NA", "EU"}
    provider = make_provider(emulator_config(emu, tmp_path), workers=8)
    wire = record_requests(provider.session)
    asks = [customers[i % 50]["id"] for i in range(1000)]
    tokens = await asyncio.gather(*(provider.get_token(tenant) for tenant in asks))
    by_tenant: dict[str, set[str]] = {}
    for tenant, token in zip(asks, tokens, strict=True):
        by_tenant.setdefault(tenant, set()).add(token)
    assert all(len(found) == 1 for found in by_tenant.values())  # one token per tenant
    issued = control.tokens(client_id=NA_CLIENT) + control.tokens(client_id=EU_CLIENT)
    assert len(issued) == 50
    assert sorted(t["tenant_id"] for t in issued) == sorted(c["id"] for c in customers)
    assert provider.app_tokens.token_requests == 50
    assert sum(1 for method, url in wire if method == "POST" and "/oauth2/" in url) == 50
    # Building 50 MSAL applications cost no discovery GET of their own: the router's copy of
    # each tenant's document was handed over.
    assert sum(1 for method, url in wire if "openid-configuration" in url) == 0
    assert provider.discovery.requests_sent == 50


async def test_fresh_gets_a_new_token_and_evicts_only_that_tenant(
    make_emulator: MakeEmulator, tmp_path: Path, make_provider: MakeProvider
) -> None:
    emu = make_emulator()
    control = Control(emu)
    provider = make_provider(emulator_config(emu, tmp_path))
    other = control.customers("NA")[1]["id"]
    a1, b1 = await provider.get_token("customer.com"), await provider.get_token(other)
    a2 = await provider.get_token("customer.com", fresh=True)
    assert a2 != a1
    assert claims(a2)["uti"] != claims(a1)["uti"]
    assert await provider.get_token("customer.com") == a2
    assert await provider.get_token(other) == b1  # the other tenant kept its token
    assert len(control.tokens(tenant=other)) == 1
    # Twenty concurrent fresh asks share one new token.
    fresh = await asyncio.gather(
        *(provider.get_token("customer.com", fresh=True) for _ in range(20))
    )
    assert len(set(fresh)) == 1
    assert fresh[0] not in (a1, a2)
    assert len(control.tokens(tenant="customer.com")) == 3
    # The sync path evicts the same way.
    a4 = provider.get_token_sync("customer.com", fresh=True)
    assert a4 != fresh[0]
    assert len(control.tokens(tenant="customer.com")) == 4


async def test_a_propagating_error_is_classified_and_a_retry_really_asks_again(
    make_emulator: MakeEmulator, tmp_path: Path, make_provider: MakeProvider
) -> None:
    """MSAL would replay the 400 for 60 s (client-traps §5); ours asks again at once."""
    emu = make_emulator()
    partner = DEMO_PARTNERS["NA"]["domain"]
    control_post(emu, "relationships", {"partner": partner, "customer": "customer.com"}, "DELETE")
    provider = make_provider(emulator_config(emu, tmp_path))
    with pytest.raises(PropagatingError) as info:
        await provider.get_token("customer.com")
    error = info.value
    assert error.code == "AADSTS700016"
    assert error.tenant == (await provider.route("customer.com")).tenant_id
    assert "was not found in the directory" in str(error)
    control_post(
        emu, "relationships", {"partner": partner, "customer": "customer.com", "in_effect": True}
    )
    token = await provider.get_token("customer.com", fresh=True)
    assert claims(token)["appid"] == NA_CLIENT


async def test_a_5xx_from_login_is_retried_and_a_lasting_one_is_transient_and_not_replayed(
    make_emulator: MakeEmulator, tmp_path: Path, make_provider: MakeProvider
) -> None:
    emu = make_emulator()
    retry = RetryPolicy(max_retries=2, backoff_base=0.01)
    provider = make_provider(emulator_config(emu, tmp_path), retry=retry)
    route = await provider.route("customer.com")
    prefix = f"/{route.tenant_id}/oauth2/v2.0/token"
    # One 503: the token request is sent again and the caller never sees it.
    control_post(emu, "faults", {"host": "login", "kind": "503", "count": 1, "path_prefix": prefix})
    assert claims(await provider.get_token("customer.com"))["tid"] == route.tenant_id
    assert provider.app_tokens.token_requests == 1
    # As many 503s as the first try and its two retries: transient, for the caller to record.
    control_post(emu, "faults", {"host": "login", "kind": "503", "count": 3, "path_prefix": prefix})
    with pytest.raises(TransientError) as info:
        await provider.get_token("customer.com", fresh=True)
    assert info.value.retryable and info.value.status == 503
    assert info.value.tenant == route.tenant_id
    # The endpoint is back: the next ask goes to it (MSAL does not replay the 503).
    assert claims(await provider.get_token("customer.com", fresh=True))["tid"] == route.tenant_id


async def test_a_wrong_secret_needs_a_person_and_a_missing_one_says_what_to_set(
    emulator: Emulator, tmp_path: Path, make_provider: MakeProvider
) -> None:
    config = emulator_config(emulator, tmp_path)
    wrong = make_provider(
        config_from_data(
            config.model.model_dump(),
            base_dir=tmp_path,
            env={
                "CSPGRAPH_SECRET_NA": "not-the-secret",
            },
        )
    )
    with pytest.raises(NeedsPersonError) as info:
        await wrong.get_token("customer.com")
    assert info.value.code == "AADSTS7000215"
    assert "not-the-secret" not in str(info.value)
    missing = make_provider(config_from_data(config.model.model_dump(), base_dir=tmp_path, env={}))
    with pytest.raises(CredentialError, match="CSPGRAPH_SECRET_NA is not set; export it"):
        await missing.get_token("customer.com")


def _app_certificate(tmp_path: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fabrikam CSP app")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    public = tmp_path / "app-cert.pem"
    public.write_bytes(cert_pem)
    bundle = tmp_path / "app.pem"
    bundle.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert_pem
    )
    return public, bundle


async def test_a_certificate_credential_signs_in_as_the_app(
    make_emulator: MakeEmulator, tmp_path: Path, make_provider: MakeProvider
) -> None:
    public, bundle = _app_certificate(tmp_path)
    world = demo_world_data(customers=2)
    world["tenant"][0]["app"][0]["certificate"] = str(public)  # the NA app
    emu = make_emulator(world)
    config = emulator_config(emu, tmp_path, regions=("NA",))
    data = config.model.model_dump()
    data["regions"]["NA"] = {**data["regions"]["NA"], "client_secret_env": None}
    data["regions"]["NA"]["certificate_file"] = str(bundle)
    provider = make_provider(config_from_data(data, base_dir=tmp_path, env={}))
    token = claims(await provider.get_token("customer.com"))
    assert (token["appid"], token["appidacr"]) == (NA_CLIENT, "2")


async def test_a_foreign_requests_ca_bundle_does_not_break_tls(
    emulator: Emulator,
    tmp_path: Path,
    make_provider: MakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """REQUESTS_CA_BUNDLE would override Session.verify (client-traps §3)."""
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    provider = make_provider(emulator_config(emulator, tmp_path))
    assert claims(provider.get_token_sync("customer.com"))["appid"] == NA_CLIENT


async def test_no_secret_or_token_is_ever_logged(
    make_emulator: MakeEmulator,
    tmp_path: Path,
    make_provider: MakeProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emu = make_emulator()
    eu = Control(emu).customers("EU")[0]["id"]
    caplog.set_level(logging.DEBUG)  # every logger: ours, msal, urllib3, aiohttp
    provider = make_provider(emulator_config(emu, tmp_path))
    tokens = [
        await provider.get_token("customer.com"),
        await provider.get_token(eu),
        await provider.get_token("customer.com", fresh=True),
        provider.get_token_sync(eu, fresh=True),
    ]
    bad = make_provider(
        config_from_data(
            emulator_config(emu, tmp_path).model.model_dump(),
            base_dir=tmp_path,
            env={"CSPGRAPH_SECRET_NA": "wrong-secret-value"},
        )
    )
    with pytest.raises(NeedsPersonError):
        await bad.get_token("customer.com")
    text = caplog.text
    assert "msal" in {r.name.split(".")[0] for r in caplog.records}  # MSAL did log, at DEBUG
    for secret in (*SECRET_ENV.values(), "wrong-secret-value"):
        assert secret not in text
    for token in tokens:
        assert token not in text
        assert token.split(".")[2] not in text  # not even the signature part


async def test_the_graph_client_calls_graph_with_these_tokens(provider: TokenProvider) -> None:
    cloud = provider.cloud
    async with GraphClient(provider, graph_url=cloud.graph, ca_bundle=cloud.ca_bundle) as graph:
        tenant = (await provider.route("customer.com")).tenant_id
        organization = await graph.get(tenant, "/organization")
    assert organization["value"][0]["id"] == tenant


def test_cspgraph_token_prints_claims_and_the_token_only_when_asked(
    emulator: Emulator, tmp_path: Path
) -> None:
    from cspgraph.cli import config_cmd
    from cspgraph.cli.main import app

    runner = CliRunner()
    config_path = tmp_path / "config.toml"
    init = runner.invoke(
        config_cmd.app,
        ["init", "--from-emulator", str(emulator.endpoints_file), "--path", str(config_path)],
    )
    assert init.exit_code == 0, init.output
    shown = runner.invoke(
        app, ["token", "--customer", "customer.com", "--config", str(config_path)]
    )
    assert shown.exit_code == 0, shown.output
    decoded = json.loads(shown.output)
    assert decoded["appid"] == NA_CLIENT
    assert "eyJ" not in shown.output  # the bearer string is not printed
    raw = runner.invoke(
        app, ["token", "--customer", "customer.com", "--raw", "--config", str(config_path)]
    )
    assert raw.exit_code == 0, raw.output
    assert claims(raw.output.strip())["appid"] == NA_CLIENT
    refused = runner.invoke(
        app, ["token", "--customer", "nowhere.example", "--config", str(config_path)]
    )
    assert refused.exit_code == 2  # bad input: no such tenant (bad_request; it exited 1 before)
    assert "AADSTS90002" in refused.output


def test_token_and_transport_errors_land_in_the_taxonomy() -> None:
    import json as _json

    import msal

    from cspgraph.http.errors import BadRequestError
    from cspgraph.identity.app_tokens import token_error, transport_error

    consent = token_error(
        {
            "error": "invalid_grant",
            "error_description": "AADSTS65001: The user or administrator has not consented.\r\n"
            "Trace ID: x",
            "error_codes": [65001],
            "correlation_id": "c-1",
        },
        "tid-1",
        "app-only token",
    )
    assert isinstance(consent, PropagatingError)
    assert (consent.code, consent.tenant, consent.request_id) == ("AADSTS65001", "tid-1", "c-1")
    assert "Trace ID" not in str(consent)
    unavailable = transport_error(
        msal.exceptions.MsalServiceError("HTTP Error: 503", error=None, error_description=None),
        "tid-1",
        "app-only token",
    )
    assert isinstance(unavailable, TransientError)
    garbled = transport_error(_json.JSONDecodeError("x", "<html>", 0), "tid-1", "app-only token")
    assert isinstance(garbled, TransientError)
    refused = transport_error(ValueError("Unable to get authority configuration"), "t", "x")
    assert isinstance(refused, BadRequestError)


async def test_partner_center_tokens_come_from_the_partner_tenant(provider: TokenProvider) -> None:
    from cspgraph.identity import AppTokenProvider

    partner_center = AppTokenProvider(
        provider.router, sessions=provider.sessions, resource="partner_center", workers=1
    )
    try:
        token = claims(await partner_center.get_token("partner.com"))
    finally:
        partner_center.close()
    assert token["aud"] == "https://api.partnercenter.microsoft.com"
    assert token["appid"] == NA_CLIENT
    assert token["tid"] == (await provider.route("partner.com")).tenant_id
