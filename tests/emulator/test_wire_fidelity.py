"""What third-party clients found the emulator doing differently from the real services (issue
15's fidelity gaps), each asserted as the real service behaves, with the source in the test.

Gap 3 (the 401 for a request without a token) is in test_graph_authz.py and test_graph_sdk.py,
gap 7 (Partner Center's optional ids) in test_partner_center.py.
"""

from __future__ import annotations

import base64
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urljoin, urlsplit

import msal

from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator
from tests.emulator.identity_helpers import (
    GRAPH_CLI,
    LOOPBACK,
    NA_APP,
    NA_SECRET,
    PASSWORDS,
    authority,
    cca,
    claims,
    parse_page,
    session,
)
from tests.emulator.test_identity_certificate import make_credential

ARM_V1 = "https://management.core.windows.net/"
ARM_SCOPE = "https://management.core.windows.net//.default"  # as azure-cli asks for it


def _v1_code(emu: Emulator, **extra: str) -> str:
    """An agent's v1 sign-in at customer.com, with ``extra`` on the authorize URL; the code."""
    http = session(emu)
    page = http.get(
        f"{authority(emu, 'customer.com')}/oauth2/authorize",
        params={
            "client_id": NA_APP,
            "response_type": "code",
            "redirect_uri": LOOPBACK,
            "resource": "https://graph.microsoft.com",
            **extra,
        },
    )
    form = next(f for f in parse_page(page.text).forms if f["id"] == "signin")
    fields = {**form["fields"], "username": "agent@partner.com", "password": PASSWORDS["agent"]}
    reply = http.post(urljoin(page.url, form["action"]), data=fields, allow_redirects=False)
    assert reply.status_code == 302, reply.text
    return parse_qs(urlsplit(reply.headers["location"]).query)["code"][0]


def _v1_redeem(emu: Emulator, code: str) -> dict[str, str]:
    answer = session(emu).post(
        f"{authority(emu, 'customer.com')}/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "client_id": NA_APP,
            "client_secret": NA_SECRET,
            "code": code,
            "redirect_uri": LOOPBACK,
            "resource": "https://graph.microsoft.com",
        },
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, str] = answer.json()
    return body


# -- gap 1: v1's code answer carries an id_token whatever `scope` said ---------------------------


def test_a_v1_code_answer_carries_an_id_token_without_scope_openid(emulator: Emulator) -> None:
    # Microsoft's v1 code flow (v1-protocols-oauth-code, "Successful response"): the authorize
    # request names no scope and the token answer carries an id_token, which ADAL-era code
    # decodes to learn who signed in.
    body = _v1_redeem(emulator, _v1_code(emulator))
    identity = claims(body["id_token"])
    assert identity["upn"] == "agent@partner.com"
    assert identity["aud"] == NA_APP
    assert identity["ver"] == "1.0"
    assert identity["iss"].startswith("https://sts.windows.net/")
    # Its refresh answer lists no id_token (the same page, "Refreshing the access tokens").
    refreshed = session(emulator).post(
        f"{authority(emulator, 'customer.com')}/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": NA_APP,
            "client_secret": NA_SECRET,
            "refresh_token": body["refresh_token"],
            "resource": "https://graph.microsoft.com",
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert "id_token" not in refreshed.json()


# -- gap 2: Azure Resource Manager tokens ---------------------------------------------------------


def test_an_app_gets_an_arm_token_at_a_customer_with_no_graph_roles(emulator: Emulator) -> None:
    # ARM's service principal exists in every tenant; a token for it carries no Graph roles.
    result = cca(emulator, "customer.com").acquire_token_for_client([ARM_SCOPE])
    assert "access_token" in result, result
    token = claims(result["access_token"])
    assert token["aud"] == ARM_V1
    assert "roles" not in token
    graph = cca(emulator, "customer.com").acquire_token_for_client(
        ["https://graph.microsoft.com/.default"]
    )
    assert claims(graph["access_token"])["roles"]  # the same app's Graph token has its roles


def test_a_v1_arm_token_names_the_resource_as_asked(emulator: Emulator) -> None:
    for resource in (ARM_V1, "https://management.azure.com/"):
        answer = session(emulator).post(
            f"{authority(emulator, 'customer.com')}/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": NA_APP,
                "client_secret": NA_SECRET,
                "resource": resource,
            },
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["resource"] == resource
        assert claims(answer.json()["access_token"])["aud"] == resource


def test_an_arm_token_is_refused_by_graph(emulator: Emulator) -> None:
    token = cca(emulator, "customer.com").acquire_token_for_client([ARM_SCOPE])["access_token"]
    answer = session(emulator).get(
        f"{emulator.endpoints.graph}/v1.0/organization",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_a_first_party_tool_signs_in_for_arm_with_user_impersonation(emulator: Emulator) -> None:
    # azure-cli's interactive sign-in is a first-party public client asking for ARM; the Graph
    # CLI app stands in for it here (both are first-party, consented everywhere).
    app = msal.PublicClientApplication(
        GRAPH_CLI,
        authority=authority(emulator, "partner.com"),
        instance_discovery=False,
        http_client=session(emulator),
    )
    flow = app.initiate_auth_code_flow([ARM_SCOPE], redirect_uri=LOOPBACK)
    http = session(emulator)
    page = http.get(flow["auth_uri"])
    form = next(f for f in parse_page(page.text).forms if f["id"] == "signin")
    fields = {**form["fields"], "username": "agent@partner.com", "password": PASSWORDS["agent"]}
    reply = http.post(urljoin(page.url, form["action"]), data=fields, allow_redirects=False)
    assert reply.status_code == 302, reply.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(reply.headers["location"]).query).items()}
    result = app.acquire_token_by_auth_code_flow(flow, query)
    assert "access_token" in result, result
    assert claims(result["access_token"])["aud"] == ARM_V1
    assert claims(result["access_token"])["scp"] == "user_impersonation"


# -- gap 4: a certificate added through the control API signs in --------------------------------


def test_a_certificate_added_through_the_control_api_signs_in(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator()
    found = emu.world.application(NA_APP)
    assert found is not None
    partner, app = found
    credential = make_credential("added by control")
    control = session(emu)
    url = f"{emu.endpoints.control}/_emulator/tenants/{partner.id}/applications/{app['id']}"
    der = base64.b64encode(credential.cert_der).decode()
    changed = control.patch(url, json={"keyCredentials": [{"key": der}]})
    assert changed.status_code == 200, changed.text
    [public] = changed.json()["keyCredentials"]
    assert public["customKeyIdentifier"] == credential.sha1_hex.upper()
    assert public["key"] is None  # the certificate is not handed back
    signed_in = cca(
        emu,
        "customer.com",
        credential={"private_key": credential.key_pem, "public_certificate": credential.cert_pem},
    ).acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert "access_token" in signed_in, signed_in
    assert claims(signed_in["access_token"])["appidacr"] == "2"  # a certificate, not a secret


def test_the_control_api_refuses_a_key_that_is_not_a_certificate(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator()
    found = emu.world.application(NA_APP)
    assert found is not None
    partner, app = found
    url = f"{emu.endpoints.control}/_emulator/tenants/{partner.id}/applications/{app['id']}"
    refused = session(emu).patch(url, json={"keyCredentials": [{"key": "bm90IGEgY2VydA=="}]})
    assert refused.status_code == 400
    assert "keyCredentials" in refused.json()["error"]
    assert emu.world.application(NA_APP)[1]["keyCredentials"] == app["keyCredentials"]


# -- gap 6: the Date header follows the world clock -----------------------------------------------


def test_every_host_dates_its_answers_by_the_world_clock(make_emulator: MakeEmulator) -> None:
    emu = make_emulator()
    emu.advance(3 * 3600)
    world_now = emu.world.clock.now()
    http = session(emu)
    e = emu.endpoints
    answers = {
        "login": http.get(f"{e.authority_host}/customer.com/v2.0/.well-known/openid-configuration"),
        "graph": http.get(f"{e.graph}/v1.0/users"),  # a 401 is dated too
        "partner_center": http.get(f"{e.partner_center}/v1/customers"),
        "control": http.get(f"{e.control}/_emulator/clock"),
    }
    for host, answer in answers.items():
        dated = parsedate_to_datetime(answer.headers["Date"]).timestamp()
        assert abs(dated - world_now) < 60, host  # three hours ahead of real time, like the world


def test_msal_keeps_a_token_the_moved_clock_expired_and_a_new_app_gets_a_good_one(
    make_emulator: MakeEmulator,
) -> None:
    # What docs/testing-your-code.md says about MSAL and a moved clock, as it happens.
    emu = make_emulator()
    app = cca(emu, "customer.com")
    scope = ["https://graph.microsoft.com/.default"]
    first = app.acquire_token_for_client(scope)["access_token"]
    emu.advance(2 * 3600)
    cached = app.acquire_token_for_client(scope)["access_token"]
    assert cached == first  # MSAL's cache runs on the process's clock
    graph = f"{emu.endpoints.graph}/v1.0/organization"
    expired = session(emu).get(graph, headers={"Authorization": f"Bearer {cached}"})
    assert expired.status_code == 401
    fresh = cca(emu, "customer.com").acquire_token_for_client(scope)["access_token"]
    answer = session(emu).get(graph, headers={"Authorization": f"Bearer {fresh}"})
    assert answer.status_code == 200, answer.text


# -- gap 5: MSAL with instance_discovery=<the emulator's endpoint> --------------------------------


def test_msal_validates_the_authority_through_the_emulators_instance_discovery(
    emulator: Emulator,
) -> None:
    # MSAL Python asks about https://{host}{path}/oauth2/v2.0/authorize with the port dropped
    # (msal/authority.py), then follows the tenant_discovery_endpoint it is given.
    app = msal.ConfidentialClientApplication(
        NA_APP,
        client_credential=NA_SECRET,
        authority=authority(emulator, "customer.com"),
        instance_discovery=f"{emulator.endpoints.authority_host}/common/discovery/instance",
        http_client=session(emulator),
    )
    result = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert "access_token" in result, result
    assert claims(result["access_token"])["roles"]


def test_instance_discovery_still_refuses_a_host_it_is_not(emulator: Emulator) -> None:
    answer = session(emulator).get(
        f"{emulator.endpoints.authority_host}/common/discovery/instance",
        params={
            "authorization_endpoint": "https://login.contoso.example/x/oauth2/v2.0/authorize",
            "api-version": "1.0",
        },
    )
    assert answer.json()["error"] == "invalid_instance"
