"""Partner users in a GDAP customer: the roles their tokens carry come from active access
assignments of the groups they are in (nested too), in active relationships; Graph authorizes
by those roles; expiry, termination and new assignments change only new tokens."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from csp_emulator import roles
from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator, tls
from tests.emulator.gdap_world import (
    APP_ID,
    APP_SECRET,
    DAP_CUSTOMER,
    GDAP_CUSTOMER,
    PARTNER,
    PASSWORDS,
    gdap_world,
)
from tests.emulator.graph_tokens import control_client, graph_client, tenant_of, user_token

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
REDIRECT = "http://localhost"
DAY = 86400
NEW_USER = {
    "accountEnabled": True,
    "displayName": "New Person",
    "mailNickname": "new.person",
    "userPrincipalName": "new.person@gdapco.com",
    "passwordProfile": {"password": "Pa55word!x"},
}


def sign_in(emu: Emulator, tenant: str, user: str) -> httpx.Response:
    """Sign ``user`` in at ``tenant``'s authority (the form, posted as a script would) and
    redeem the code; the token answer, or the sign-in form with its error."""
    authority = f"{emu.endpoints.authority_host}/{tenant}/oauth2/v2.0"
    password = PASSWORDS[user.split("@")[0]]
    with httpx.Client(verify=tls(emu)) as http:
        page = http.post(
            f"{authority}/authorize",
            data={"client_id": APP_ID, "response_type": "code", "redirect_uri": REDIRECT,
                  "scope": f"{GRAPH_DEFAULT} offline_access", "username": user,
                  "password": password},
        )  # fmt: skip
        if page.status_code != 302:
            return page
        code = parse_qs(urlsplit(page.headers["Location"]).query)["code"][0]
        return http.post(
            f"{authority}/token",
            data={"grant_type": "authorization_code", "client_id": APP_ID,
                  "client_secret": APP_SECRET, "code": code, "redirect_uri": REDIRECT,
                  "scope": f"{GRAPH_DEFAULT} offline_access"},
        )  # fmt: skip


def token_of(emu: Emulator, tenant: str, user: str) -> str:
    answer = sign_in(emu, tenant, user)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def refusal(answer: httpx.Response) -> str:
    """The AADSTS code and text the sign-in form shows."""
    match = re.search(r'data-aadsts="\d+">([^<]*)<', answer.text)
    assert match is not None, answer.text
    return html.unescape(match.group(1))


@pytest.fixture
def emu(make_emulator: MakeEmulator) -> Emulator:
    return make_emulator(gdap_world())


def test_a_user_admin_through_gdap_creates_a_user(emu: Emulator) -> None:
    token = token_of(emu, GDAP_CUSTOMER, "tech@partner.com")
    seen = claims(token)
    assert seen["wids"] == [roles.USER_ADMINISTRATOR]
    assert seen["tid"] == tenant_of(emu, GDAP_CUSTOMER).id
    assert "oid" not in seen and seen["idp"].endswith(f"{tenant_of(emu, PARTNER).id}/")
    with graph_client(emu, token) as graph:
        assert graph.get("/v1.0/users").status_code == 200
        assert graph.post("/v1.0/users", json=NEW_USER).status_code == 201


def test_nested_groups_count_and_directory_readers_read_but_cannot_create(emu: Emulator) -> None:
    token = token_of(emu, GDAP_CUSTOMER, "agent@partner.com")
    # GDAP Readers holds GDAP Helpdesk, which holds the agent; GDAP App Admins holds them too.
    assert set(claims(token)["wids"]) == {
        roles.DIRECTORY_READERS,
        roles.CLOUD_APPLICATION_ADMINISTRATOR,
        roles.PRIVILEGED_ROLE_ADMINISTRATOR,
    }
    with graph_client(emu, token) as graph:
        users = graph.get("/v1.0/users")
        created = graph.post("/v1.0/users", json=NEW_USER)
        devices = graph.get("/v1.0/deviceManagement/managedDevices")
    assert users.status_code == 200
    assert {u["id"] for u in users.json()["value"]} == set(
        tenant_of(emu, GDAP_CUSTOMER).objects["users"]
    )
    for refused in (created, devices):
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "Authorization_RequestDenied"
        assert refused.json()["error"]["message"] == (
            "Insufficient privileges to complete the operation."
        )


def test_an_intune_administrator_reads_managed_devices(emu: Emulator) -> None:
    token = token_of(emu, GDAP_CUSTOMER, "intune@partner.com")
    assert claims(token)["wids"] == [roles.INTUNE_ADMINISTRATOR]
    with graph_client(emu, token) as graph:
        devices = graph.get("/v1.0/deviceManagement/managedDevices")
        created = graph.post("/v1.0/users", json=NEW_USER)
    assert devices.status_code == 200
    assert len(devices.json()["value"]) == 3
    assert created.status_code == 403


def test_admin_agents_alone_grants_nothing_in_a_gdap_customer(make_emulator: MakeEmulator) -> None:
    data = gdap_world()
    # The agent keeps AdminAgents but leaves the GDAP groups.
    groups = data["tenant"][0]["group"]
    for group in groups:
        group["members"] = [m for m in group.get("members", []) if m != "agent@partner.com"]
    emu = make_emulator(data)
    answer = sign_in(emu, GDAP_CUSTOMER, "agent@partner.com")
    text = refusal(answer)
    assert text.startswith("AADSTS50020: User account 'agent@partner.com'")
    assert "no active access assignment of a security group this user belongs to" in text
    # In a DAP customer the same user still acts as Global Administrator.
    assert claims(token_of(emu, DAP_CUSTOMER, "agent@partner.com"))["wids"] == [
        roles.GLOBAL_ADMINISTRATOR
    ]


def test_a_user_outside_admin_agents_gets_nothing_from_dap(emu: Emulator) -> None:
    text = refusal(sign_in(emu, DAP_CUSTOMER, "tech@partner.com"))
    assert text.startswith("AADSTS50020:")
    assert "there is no GDAP relationship between the partner and this customer" in text


def test_expiry_removes_access_for_new_tokens_only(emu: Emulator) -> None:
    before = token_of(emu, GDAP_CUSTOMER, "tech@partner.com")
    emu.advance(701 * DAY)  # the relationship was activated 30 days ago, for 730 days
    text = refusal(sign_in(emu, GDAP_CUSTOMER, "tech@partner.com"))
    assert text.startswith("AADSTS50020:") and "expired, not active" in text
    assert claims(before)["wids"] == [roles.USER_ADMINISTRATOR]  # frozen at issue


def test_termination_removes_access_for_new_tokens(emu: Emulator) -> None:
    with control_client(emu) as control:
        rel_id = control.get("/gdap").json()["value"][0]["id"]
    partner_agent = token_of(emu, GDAP_CUSTOMER, "tech@partner.com")
    with graph_client(emu, gdap_admin(emu)) as graph:
        answer = graph.post(
            f"/v1.0/tenantRelationships/delegatedAdminRelationships/{rel_id}/requests",
            json={"action": "terminate"},
        )
    assert answer.status_code == 201
    assert refusal(sign_in(emu, GDAP_CUSTOMER, "tech@partner.com")).startswith("AADSTS50020:")
    # The token issued before still reads until it expires: claims are frozen at issue.
    with graph_client(emu, partner_agent) as graph:
        assert graph.get("/v1.0/users").status_code == 200


def test_a_token_from_before_an_assignment_was_active_never_gains_its_role(
    emu: Emulator,
) -> None:
    partner = tenant_of(emu, PARTNER)
    intune_group = partner.group_by_name("GDAP Intune")
    assert intune_group is not None
    with control_client(emu) as control:
        # tech@ joins GDAP Intune: group membership counts from the next token on.
        control.post(
            f"/tenants/{PARTNER}/groups/{intune_group['id']}/members",
            json={"id": partner.user_by_upn("tech@partner.com")["id"]},  # type: ignore[index]
        )
    assert set(claims(token_of(emu, GDAP_CUSTOMER, "tech@partner.com"))["wids"]) == {
        roles.USER_ADMINISTRATOR,
        roles.INTUNE_ADMINISTRATOR,
    }
    # The GDAP Intune group's assignment gains User Administrator: a long-running operation,
    # in effect after assignment_delay, for new tokens only.
    old = token_of(emu, GDAP_CUSTOMER, "intune@partner.com")
    with graph_client(emu, gdap_admin(emu)) as graph:
        base = "/v1.0/tenantRelationships/delegatedAdminRelationships"
        rel_id = graph.get(base).json()["value"][0]["id"]
        url = f"{base}/{rel_id}/accessAssignments"
        assignment = next(
            a for a in graph.get(url).json()["value"]
            if a["accessContainer"]["accessContainerId"] == intune_group["id"]
        )  # fmt: skip
        wider = [{"roleDefinitionId": r}
                 for r in (roles.INTUNE_ADMINISTRATOR, roles.USER_ADMINISTRATOR)]  # fmt: skip
        changed = graph.patch(
            f"{url}/{assignment['id']}",
            json={"accessDetails": {"unifiedRoles": wider}},
            headers={"If-Match": assignment["@odata.etag"]},
        )
    assert changed.status_code == 202
    assert claims(token_of(emu, GDAP_CUSTOMER, "intune@partner.com"))["wids"] == [
        roles.INTUNE_ADMINISTRATOR
    ]
    emu.advance(61)
    new = token_of(emu, GDAP_CUSTOMER, "intune@partner.com")
    assert set(claims(new)["wids"]) == {roles.INTUNE_ADMINISTRATOR, roles.USER_ADMINISTRATOR}
    with graph_client(emu, old) as graph:
        assert graph.post("/v1.0/users", json=NEW_USER).status_code == 403
    with graph_client(emu, new) as graph:
        assert graph.post("/v1.0/users", json=NEW_USER).status_code == 201


def gdap_admin(emu: Emulator) -> str:
    """A partner administrator's token for the GDAP APIs (an AdminAgents member)."""
    return user_token(
        emu, PARTNER, upn="agent@partner.com", scp="DelegatedAdminRelationship.ReadWrite.All",
        wids=(),
    )  # fmt: skip


def test_gdap_without_app_consent_is_refused_for_agents(make_emulator: MakeEmulator) -> None:
    data = gdap_world()
    data["tenant"][1]["consent"] = []
    emu = make_emulator(data)
    text = refusal(sign_in(emu, GDAP_CUSTOMER, "tech@partner.com"))
    assert text.startswith("AADSTS90099:")
