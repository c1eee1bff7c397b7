"""A new partner relationship takes time to reach the customer (seed: "up to 3 minutes"). Until
then tokens are issued without the pre-consented claims, and a token keeps the claims it was
issued with: only a new token after the relationship took effect carries them."""

from __future__ import annotations

import httpx

from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator, tls
from tests.emulator.identity_helpers import (
    CSP_APP,
    GLOBAL_ADMIN,
    GRAPH_DEFAULT,
    PASSWORDS,
    SECRET,
    app_only,
    cca,
    claims,
    csp_world,
    tenant,
    user_token,
)

ROLES = {"User.Read.All", "Group.Read.All"}


def _delay(emu: Emulator) -> float:
    return emu.world.settings.propagation_delay


def test_app_only_token_before_and_after_propagation(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(csp_world())
    early = app_only(emu, "new.com")
    assert early.status_code == 200, early.text  # Entra issues it...
    early_token = early.json()["access_token"]
    assert "roles" not in claims(early_token)  # ...without the pre-consented permissions

    emu.advance(_delay(emu) + 1)
    # Claims are frozen at issue: the early token, still valid, still has no roles.
    still = emu.ctx.keys.validate(
        early_token,
        now=emu.world.clock.now(),
        audiences=frozenset({"https://graph.microsoft.com"}),
    )
    assert "roles" not in still

    fresh = app_only(emu, "new.com")
    assert set(claims(fresh.json()["access_token"])["roles"]) == ROLES


def test_msal_cache_keeps_the_early_token_until_a_fresh_client_asks(
    make_emulator: MakeEmulator,
) -> None:
    """Why the seed says to get a *new* token: a cached one never gains the claims."""
    emu = make_emulator(csp_world())
    app = cca(emu, "new.com", client_id=CSP_APP, credential=SECRET)
    early = app.acquire_token_for_client([GRAPH_DEFAULT])
    assert "roles" not in claims(early["access_token"])
    emu.advance(_delay(emu) + 1)
    cached = app.acquire_token_for_client([GRAPH_DEFAULT])
    assert cached["token_source"] == "cache"
    assert "roles" not in claims(cached["access_token"])
    fresh = cca(emu, "new.com", client_id=CSP_APP, credential=SECRET).acquire_token_for_client(
        [GRAPH_DEFAULT]
    )
    assert set(claims(fresh["access_token"])["roles"]) == ROLES


def test_relationship_created_through_the_control_api(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(csp_world())
    assert app_only(emu, "orphan.com").status_code == 400  # no relationship: 700016
    with httpx.Client(base_url=f"{emu.endpoints.control}/_emulator", verify=tls(emu)) as control:
        created = control.post(
            "/relationships", json={"partner": "partner.com", "customer": "orphan.com"}
        )
        assert created.status_code == 201, created.text
        before = app_only(emu, "orphan.com")
        assert before.status_code == 200
        assert "roles" not in claims(before.json()["access_token"])
        control.post("/clock", json={"seconds": _delay(emu) + 1})
        after = app_only(emu, "orphan.com")
        assert set(claims(after.json()["access_token"])["roles"]) == ROLES
        # Ending the relationship ends the pre-consent.
        ended = control.request(
            "DELETE", "/relationships", json={"partner": "partner.com", "customer": "orphan.com"}
        )
        assert ended.status_code == 204
    assert app_only(emu, "orphan.com").status_code == 400


def test_agent_token_before_and_after_propagation(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(csp_world())
    early = user_token(emu, "new.com", "agent@partner.com", PASSWORDS["agent"])
    assert early.status_code == 200, early.text
    c = claims(early.json()["access_token"])
    assert c["tid"] == tenant(emu, "new.com").id
    assert "scp" not in c and "wids" not in c

    emu.advance(_delay(emu) + 1)
    late = user_token(emu, "new.com", "agent@partner.com", PASSWORDS["agent"])
    c = claims(late.json()["access_token"])
    assert c["wids"] == [GLOBAL_ADMIN]
    assert set(c["scp"].split()) == {"Directory.AccessAsUser.All", "User.Read"}


def test_refresh_after_propagation_gains_the_claims(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(csp_world())
    early = user_token(emu, "new.com", "agent@partner.com", PASSWORDS["agent"]).json()
    assert "wids" not in claims(early["access_token"])
    emu.advance(_delay(emu) + 1)
    r = httpx.post(
        f"{emu.endpoints.authority_host}/new.com/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "client_id": CSP_APP,
            "client_secret": SECRET,
            "refresh_token": early["refresh_token"],
            "scope": GRAPH_DEFAULT,
        },
        verify=tls(emu),
    )
    assert r.status_code == 200, r.text
    assert claims(r.json()["access_token"])["wids"] == [GLOBAL_ADMIN]
