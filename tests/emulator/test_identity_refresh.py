"""Refresh tokens: rotation, expiry, and the CSP pattern of one agent sign-in redeemed at many
customers' endpoints (MSAL caches refresh tokens without a realm, client-traps §1)."""

from __future__ import annotations

from typing import Any

import msal

from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator
from tests.emulator.identity_helpers import (
    GLOBAL_ADMIN,
    GRAPH_DEFAULT,
    LOOPBACK,
    NA_APP,
    NA_SECRET,
    PASSWORDS,
    aadsts,
    authority,
    cca,
    claims,
    client_info,
    customers_of,
    not_customer_of,
    parse_page,
    session,
    sign_in_for_code,
    submit_sign_in,
    tenant,
)


def _agent_tokens(emu: Emulator, tenant_ref: str = "customer.com") -> dict[str, Any]:
    params = sign_in_for_code(
        session(emu),
        f"{authority(emu, tenant_ref)}/oauth2/v2.0/authorize",
        {
            "client_id": NA_APP,
            "response_type": "code",
            "redirect_uri": LOOPBACK,
            "scope": f"{GRAPH_DEFAULT} offline_access openid profile",
        },
        "agent@partner.com",
        PASSWORDS["agent"],
    )
    r = session(emu).post(
        f"{authority(emu, tenant_ref)}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": NA_APP,
            "client_secret": NA_SECRET,
            "code": params["code"],
            "redirect_uri": LOOPBACK,
            "scope": f"{GRAPH_DEFAULT} offline_access openid profile",
            "client_info": "1",
        },
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _refresh(emu: Emulator, tenant_ref: str, rt: str, *, v1: bool = False) -> Any:
    path = "oauth2/token" if v1 else "oauth2/v2.0/token"
    data = {
        "grant_type": "refresh_token",
        "client_id": NA_APP,
        "client_secret": NA_SECRET,
        "refresh_token": rt,
        "client_info": "1",
    }
    if v1:
        data["resource"] = "https://graph.microsoft.com"
    else:
        data["scope"] = f"{GRAPH_DEFAULT} offline_access openid profile"
    return session(emu).post(f"{authority(emu, tenant_ref)}/{path}", data=data)


def _other_customer(emu: Emulator) -> str:
    customer = tenant(emu, "customer.com")
    other = next(t for t in customers_of(emu, "partner.com") if t.id != customer.id)
    return other.id


def test_agent_refresh_token_redeemed_at_another_customer(emulator: Emulator) -> None:
    first = _agent_tokens(emulator)
    other = _other_customer(emulator)
    r = _refresh(emulator, other, first["refresh_token"])
    assert r.status_code == 200, r.text
    body = r.json()
    c = claims(body["access_token"])
    assert c["tid"] == other
    assert c["wids"] == [GLOBAL_ADMIN]
    assert c["scp"] == "Directory.AccessAsUser.All"
    partner = tenant(emulator, "partner.com")
    assert client_info(body["client_info"])["utid"] == partner.id
    assert claims(body["id_token"])["tid"] == other


def test_msal_shared_cache_redeems_the_agent_rt_at_another_customer(emulator: Emulator) -> None:
    """One sign-in, many customers: a CCA per customer sharing one cache (client-traps §1)."""
    cache = msal.TokenCache()
    app_a = cca(emulator, "customer.com", token_cache=cache)
    flow = app_a.initiate_auth_code_flow(
        [GRAPH_DEFAULT], redirect_uri=LOOPBACK, response_mode="form_post"
    )
    s = session(emulator)
    reply = submit_sign_in(s, s.get(flow["auth_uri"]), "agent@partner.com", PASSWORDS["agent"])
    posted = next(f for f in parse_page(reply.text).forms if f["id"] == "response")
    first = app_a.acquire_token_by_auth_code_flow(flow, posted["fields"])
    assert "access_token" in first, first

    other = _other_customer(emulator)
    app_b = cca(emulator, other, token_cache=cache)
    account = app_b.get_accounts(username="agent@partner.com")[0]
    result = app_b.acquire_token_silent([GRAPH_DEFAULT], account=account)
    assert result is not None and "access_token" in result, result
    assert result["token_source"] == "identity_provider"  # via the refresh token
    assert claims(result["access_token"])["tid"] == other


def test_refresh_token_at_a_tenant_that_is_not_a_customer_is_50020(emulator: Emulator) -> None:
    first = _agent_tokens(emulator)
    stranger = not_customer_of(emulator, "partner.com")
    r = _refresh(emulator, stranger.id, first["refresh_token"])
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"
    assert aadsts(r.json()) == 50020


def test_refresh_tokens_rotate_and_the_old_one_still_works(emulator: Emulator) -> None:
    first = _agent_tokens(emulator)
    second = _refresh(emulator, "customer.com", first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    # Entra does not revoke a refresh token on use; both redeem.
    assert _refresh(emulator, "customer.com", second["refresh_token"]).status_code == 200
    assert _refresh(emulator, "customer.com", first["refresh_token"]).status_code == 200


def test_v1_refresh_at_another_customer(emulator: Emulator) -> None:
    first = _agent_tokens(emulator)
    other = _other_customer(emulator)
    r = _refresh(emulator, other, first["refresh_token"], v1=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resource"] == "https://graph.microsoft.com"
    assert isinstance(body["expires_in"], str)
    assert claims(body["access_token"])["tid"] == other


def test_unknown_refresh_token_is_invalid_grant(emulator: Emulator) -> None:
    r = _refresh(emulator, "customer.com", "1.Anot-a-token")
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")


def test_a_reset_forgets_every_refresh_token(make_emulator: MakeEmulator) -> None:
    emu = make_emulator()
    first = _agent_tokens(emu)
    assert _refresh(emu, "customer.com", first["refresh_token"]).status_code == 200
    emu.call(emu.ctx.reset)
    r = _refresh(emu, "customer.com", first["refresh_token"])
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")


def test_refresh_token_expires_after_inactivity_700082(make_emulator: MakeEmulator) -> None:
    emu = make_emulator()
    first = _agent_tokens(emu)
    emu.advance(emu.world.settings.refresh_token_lifetime + 1)
    r = _refresh(emu, "customer.com", first["refresh_token"])
    assert (r.status_code, r.json()["error"], aadsts(r.json())) == (400, "invalid_grant", 700082)


def test_disabled_user_cannot_refresh_50057(make_emulator: MakeEmulator) -> None:
    emu = make_emulator()
    first = _agent_tokens(emu)
    partner = tenant(emu, "partner.com")
    agent = partner.user_by_upn("agent@partner.com")
    assert agent is not None
    emu.call(lambda: partner.update("users", agent["id"], {"accountEnabled": False}))
    r = _refresh(emu, "customer.com", first["refresh_token"])
    assert (r.status_code, aadsts(r.json())) == (400, 50057)
