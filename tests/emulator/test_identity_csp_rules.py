"""The CSP rules: each refusal with its AADSTS code (the table in emulator/csp_rules.py), and
the claims a partner agent carries in a customer tenant."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import load_world_data
from tests.emulator.identity_helpers import (
    CSP_APP,
    EU_CSP_APP,
    GLOBAL_ADMIN,
    HELPDESK_ADMIN,
    LOOPBACK,
    PASSWORDS,
    PC_DEFAULT,
    PLAIN_APP,
    SINGLE_APP,
    USER_TEMPLATE,
    aadsts,
    app_only,
    authority,
    claims,
    csp_world,
    parse_page,
    session,
    tenant,
    user_sign_in,
    user_token,
)


@pytest.fixture(scope="module")
def world_emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator for this module's read-only checks (nothing here moves the clock)."""
    data = csp_world()
    with Emulator(
        lambda: load_world_data(data), state_dir=tmp_path_factory.mktemp("csp-rules")
    ) as emu:
        yield emu


# -- app-only --------------------------------------------------------------------------------------


def test_pre_consented_app_gets_its_permissions_as_roles(world_emu: Emulator) -> None:
    r = app_only(world_emu, "customer.com")
    assert r.status_code == 200, r.text
    c = claims(r.json()["access_token"])
    assert c["tid"] == tenant(world_emu, "customer.com").id
    assert set(c["roles"]) == {"User.Read.All", "Group.Read.All"}
    sp = tenant(world_emu, "customer.com").service_principal_by_app_id(CSP_APP)
    assert sp is not None and c["oid"] == sp["id"]
    assert sp["appOwnerOrganizationId"] == tenant(world_emu, "partner.com").id


@pytest.mark.parametrize(
    ("tenant_ref", "client_id", "why"),
    [
        ("orphan.com", CSP_APP, "no relationship"),
        ("nodap.com", CSP_APP, "relationship without delegated admin privileges"),
        ("customer.com", PLAIN_APP, "the app's SP is not in AdminAgents"),
        ("customer.com", SINGLE_APP, "single-tenant app"),
        ("eu-customer.com", CSP_APP, "customer in another region"),
        ("gov.com", CSP_APP, "customer in another cloud"),
        ("customer.com", EU_CSP_APP, "the EU partner's app at an NA customer"),
        ("partner-eu.com", CSP_APP, "another partner's tenant"),
    ],
)
def test_app_only_without_pre_consent_is_700016(
    world_emu: Emulator, tenant_ref: str, client_id: str, why: str
) -> None:
    r = app_only(world_emu, tenant_ref, client_id)
    body = r.json()
    assert (r.status_code, body["error"], aadsts(body)) == (400, "unauthorized_client", 700016), why
    name = tenant(world_emu, tenant_ref).display_name
    assert body["error_description"].startswith(
        f"AADSTS700016: Application with identifier '{client_id}' was not found in the "
        f"directory '{name}'."
    )


def test_each_region_has_its_own_app(world_emu: Emulator) -> None:
    r = app_only(world_emu, "eu-own.com", EU_CSP_APP)
    assert r.status_code == 200
    assert set(claims(r.json()["access_token"])["roles"]) == {"User.Read.All", "Group.Read.All"}


def test_partner_center_is_refused_at_a_customer_500011(world_emu: Emulator) -> None:
    r = app_only(world_emu, "customer.com", scope=PC_DEFAULT)
    assert (r.status_code, r.json()["error"], aadsts(r.json())) == (400, "invalid_resource", 500011)


def test_app_without_its_service_principal_at_home_is_7000229(world_emu: Emulator) -> None:
    partner = tenant(world_emu, "partner.com")
    sp = partner.service_principal_by_app_id(PLAIN_APP)
    assert sp is not None
    world_emu.call(lambda: partner.remove("servicePrincipals", sp["id"]))
    try:
        r = app_only(world_emu, "partner.com", PLAIN_APP)
        assert aadsts(r.json()) == 7000229
    finally:
        world_emu.call(lambda: partner.add("servicePrincipals", sp))


# -- users -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant_ref", "username", "password", "why"),
    [
        ("customer.com", "sales@partner.com", PASSWORDS["sales"], "SalesAgents"),
        ("customer.com", "plain@partner.com", "P@ssw0rd-plain", "in no agent group"),
        ("orphan.com", "agent@partner.com", PASSWORDS["agent"], "no relationship"),
        ("nodap.com", "agent@partner.com", PASSWORDS["agent"], "relationship without DAP"),
        ("customer.com", "agent@partner-eu.com", "P@ssw0rd-eu", "another partner's agent"),
    ],
)
def test_user_the_tenant_does_not_admit_is_50020_at_sign_in(
    world_emu: Emulator, tenant_ref: str, username: str, password: str, why: str
) -> None:
    reply = user_sign_in(world_emu, tenant_ref, username, password)
    assert reply.status_code == 200, why  # the form again, not a redirect with a code
    page = parse_page(reply.text)
    assert page.error_code == 50020, why
    assert f"User account '{username}'" in page.error_text


def test_agent_with_an_app_that_is_not_pre_consented_is_90099(world_emu: Emulator) -> None:
    reply = user_sign_in(
        world_emu, "customer.com", "agent@partner.com", PASSWORDS["agent"], client_id=PLAIN_APP
    )
    assert parse_page(reply.text).error_code == 90099


def test_customer_user_with_an_app_without_consent_is_65001(world_emu: Emulator) -> None:
    reply = user_sign_in(
        world_emu, "customer.com", "user@customer.com", "P@ssw0rd-user", client_id=PLAIN_APP
    )
    page = parse_page(reply.text)
    assert page.error_code == 65001
    assert (
        f"The user or administrator has not consented to use the application with ID "
        f"'{PLAIN_APP}' named 'Plain app'." in page.error_text
    )


def test_single_tenant_app_at_another_tenant_is_700016_before_sign_in(
    world_emu: Emulator,
) -> None:
    r = session(world_emu).get(
        f"{authority(world_emu, 'customer.com')}/oauth2/v2.0/authorize",
        params={
            "client_id": SINGLE_APP,
            "response_type": "code",
            "redirect_uri": LOOPBACK,
            "scope": "User.Read",
        },
    )
    assert r.status_code == 400
    assert parse_page(r.text).error_code == 700016


def test_customer_user_with_the_pre_consented_app(world_emu: Emulator) -> None:
    r = user_token(world_emu, "customer.com", "user@customer.com", "P@ssw0rd-user")
    assert r.status_code == 200, r.text
    c = claims(r.json()["access_token"])
    customer = tenant(world_emu, "customer.com")
    user = customer.user_by_upn("user@customer.com")
    assert user is not None
    assert c["oid"] == user["id"]
    assert c["wids"] == [USER_TEMPLATE]
    assert set(c["scp"].split()) == {"Directory.AccessAsUser.All", "User.Read"}
    assert c["acct"] == 0


def test_admin_agent_is_global_admin_in_the_customer(world_emu: Emulator) -> None:
    r = user_token(world_emu, "customer.com", "agent@partner.com", PASSWORDS["agent"])
    c = claims(r.json()["access_token"])
    assert c["wids"] == [GLOBAL_ADMIN]
    assert c["acct"] == 1


def test_helpdesk_agent_is_helpdesk_admin_in_the_customer(world_emu: Emulator) -> None:
    r = user_token(world_emu, "customer.com", "helpdesk@partner.com", PASSWORDS["helpdesk"])
    assert r.status_code == 200, r.text
    c = claims(r.json()["access_token"])
    assert c["wids"] == [HELPDESK_ADMIN]
    assert c["idp"] == f"https://sts.windows.net/{tenant(world_emu, 'partner.com').id}/"


def test_bare_scopes_are_intersected_with_the_apps_permissions(world_emu: Emulator) -> None:
    r = user_token(
        world_emu,
        "customer.com",
        "agent@partner.com",
        PASSWORDS["agent"],
        scope="User.Read Mail.Read",
    )
    body = r.json()
    c = claims(body["access_token"])
    assert c["scp"] == "User.Read"
    assert c["aud"] == "00000003-0000-0000-c000-000000000000"
    assert "User.Read" in body["scope"].split()


# -- Partner Center --------------------------------------------------------------------------------


def test_partner_center_app_plus_user_at_the_partner(world_emu: Emulator) -> None:
    r = user_token(
        world_emu,
        "partner.com",
        "admin@partner.com",
        PASSWORDS["admin"],
        scope="https://api.partnercenter.microsoft.com/user_impersonation",
    )
    assert r.status_code == 200, r.text
    c = claims(r.json()["access_token"])
    assert c["aud"] == "https://api.partnercenter.microsoft.com"
    assert c["scp"] == "user_impersonation"
    assert c["amr"] == ["pwd", "mfa"]
    assert c["ver"] == "1.0"


def test_partner_center_for_an_agent_at_a_customer_is_500011(world_emu: Emulator) -> None:
    r = user_token(
        world_emu, "customer.com", "agent@partner.com", PASSWORDS["agent"], scope=PC_DEFAULT
    )
    assert (r.status_code, r.json()["error"], aadsts(r.json())) == (400, "invalid_resource", 500011)
