"""The seed's delegated flow end to end, with real tokens: a partner agent signs in with their
partner account against the *customer's* authority (MSAL's authorization code flow), and the
app calls ``GET https://graph.microsoft.com/beta/users`` in the customer with that token."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import msal
import requests

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import DEMO_PARTNERS
from tests.conftest import tls
from tests.emulator.graph_tokens import CUSTOMER_DOMAIN, graph_client, tenant_of

PARTNER_APP = DEMO_PARTNERS["NA"]


def agent_token(emu: Emulator, username: str, password: str) -> str:
    # MSAL's own session, trusting the emulator's CA; trust_env=False because a set
    # REQUESTS_CA_BUNDLE would override `verify` (client-traps §3).
    session = requests.Session()
    session.verify = emu.endpoints.ca_bundle
    session.trust_env = False
    app = msal.ConfidentialClientApplication(
        PARTNER_APP["client_id"],
        client_credential=PARTNER_APP["client_secret"],
        authority=f"{emu.endpoints.authority_host}/{CUSTOMER_DOMAIN}",
        instance_discovery=False,
        http_client=session,
    )
    flow = app.initiate_auth_code_flow(
        ["https://graph.microsoft.com/.default"], redirect_uri="http://localhost"
    )
    # The agent's browser: the emulator's sign-in form takes the partner credentials.
    signed_in = httpx.post(
        flow["auth_uri"], data={"username": username, "password": password}, verify=tls(emu)
    )
    assert signed_in.status_code == 302, signed_in.text
    answer = {k: v[0] for k, v in parse_qs(urlsplit(signed_in.headers["Location"]).query).items()}
    result = app.acquire_token_by_auth_code_flow(flow, answer)
    assert "access_token" in result, result
    token = result["access_token"]
    assert isinstance(token, str)
    return token


def test_an_agent_signed_in_to_the_customer_lists_its_users_on_beta(emulator: Emulator) -> None:
    token = agent_token(emulator, "agent@partner.com", "P@ssw0rd-agent")
    with graph_client(emulator, token) as graph:
        response = graph.get("/beta/users")
        mail = graph.get("/beta/me/messages")
    assert response.status_code == 200
    users = response.json()["value"]
    assert {u["id"] for u in users} == set(tenant_of(emulator, CUSTOMER_DOMAIN).objects["users"])
    # Directory yes, mail no: the CSP rule holds for agents too.
    assert mail.status_code == 403


def test_a_helpdesk_agent_reads_but_does_not_administer(emulator: Emulator) -> None:
    """HelpdeskAgents are Helpdesk Administrators in the customer: they read the directory and
    reset passwords, but creating a group is refused."""
    token = agent_token(emulator, "helpdesk@partner.com", "P@ssw0rd-helpdesk")
    with graph_client(emulator, token) as graph:
        listed = graph.get("/v1.0/groups")
        created = graph.post(
            "/v1.0/groups",
            json={"displayName": "x", "mailEnabled": False, "mailNickname": "x",
                  "securityEnabled": True},
        )  # fmt: skip
    assert listed.status_code == 200
    assert created.status_code == 403
    assert created.json()["error"]["code"] == "Authorization_RequestDenied"
