"""Helpers for the identity tests: an HTTPS session that trusts the emulator's CA, a driver for
the sign-in form, token decoding, and the demo world's well-known names."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt
import msal
import requests

from csp_emulator.server import Emulator
from csp_emulator.world.model import Tenant

NA_APP = "6731de76-14a6-49ae-97bc-6eba6914391e"
NA_SECRET = "app-secret-na"
EU_APP = "0f4d3c2b-8a91-4f6e-b7d5-2c1e9a8b7f60"
EU_SECRET = "app-secret-eu"
GRAPH_CLI = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
PC_DEFAULT = "https://api.partnercenter.microsoft.com/.default"
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
HELPDESK_ADMIN = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
USER_TEMPLATE = "b79fbf4d-3ef9-4689-8143-76b194e85509"
PASSWORDS = {
    "agent": "P@ssw0rd-agent",
    "helpdesk": "P@ssw0rd-helpdesk",
    "sales": "P@ssw0rd-sales",
    "admin": "P@ssw0rd-admin",
}
LOOPBACK = "http://localhost"


def session(emu: Emulator) -> requests.Session:
    """A Session that trusts the local CA and ignores REQUESTS_CA_BUNDLE (client-traps §3)."""
    s = requests.Session()
    s.verify = emu.endpoints.ca_bundle
    s.trust_env = False
    return s


def authority(emu: Emulator, tenant: str) -> str:
    return f"{emu.endpoints.authority_host}/{tenant}"


def cca(
    emu: Emulator,
    tenant: str,
    client_id: str = NA_APP,
    credential: Any = NA_SECRET,
    **kwargs: Any,
) -> msal.ConfidentialClientApplication:
    """An unmodified MSAL confidential client with its own HTTP cache (MSAL replays cached
    400s for 60 s, client-traps §5, so tests never share one)."""
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=authority(emu, tenant),
        instance_discovery=False,
        http_client=session(emu),
        http_cache={},
        **kwargs,
    )


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def client_info(value: str) -> dict[str, Any]:
    padded = value + "=" * (-len(value) % 4)
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return result


def aadsts(body: dict[str, Any]) -> int:
    codes = body.get("error_codes") or []
    assert codes, f"no AADSTS code in {body}"
    return int(codes[0])


def tenant(emu: Emulator, ref: str) -> Tenant:
    found = emu.world.tenant(ref)
    assert found is not None, ref
    return found


def customers_of(emu: Emulator, partner_domain: str) -> list[Tenant]:
    partner = tenant(emu, partner_domain)
    return emu.world.customers_of(partner.id)


def not_customer_of(emu: Emulator, partner_domain: str) -> Tenant:
    partner = tenant(emu, partner_domain)
    mine = {t.id for t in emu.world.customers_of(partner.id)}
    for t in emu.world.tenants.values():
        if t.kind == "customer" and t.id not in mine:
            return t
    raise AssertionError("the world has no customer of another partner")


# -- the sign-in form ------------------------------------------------------------------------------


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.error_code: int | None = None
        self.error_text = ""
        self._in_error = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"id": a.get("id"), "action": a.get("action", ""), "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif tag == "div" and a.get("id") == "error":
            self.error_code = int(a["data-aadsts"])
            self._in_error = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._in_error:
            self.error_text += data


def parse_page(html: str) -> _FormParser:
    parser = _FormParser()
    parser.feed(html)
    return parser


def submit_sign_in(
    s: requests.Session, page: requests.Response, username: str, password: str
) -> requests.Response:
    """Fill the sign-in form a GET /authorize returned and post it, as a browser would."""
    assert page.status_code == 200, page.text
    parsed = parse_page(page.text)
    form = next(f for f in parsed.forms if f["id"] == "signin")
    fields = dict(form["fields"])
    fields.update({"username": username, "password": password})
    return s.post(urljoin(page.url, form["action"]), data=fields, allow_redirects=False)


def redirect_params(response: requests.Response) -> dict[str, str]:
    """The query parameters of a 302 back to the app."""
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def sign_in_for_code(
    s: requests.Session, url: str, params: dict[str, str], username: str, password: str
) -> dict[str, str]:
    page = s.get(url, params=params)
    return redirect_params(submit_sign_in(s, page, username, password))


# -- a small world for the CSP rules ---------------------------------------------------------------

CSP_APP = "a1111111-1111-4111-8111-111111111111"  # pre-consented: SP in AdminAgents
PLAIN_APP = "b2222222-2222-4222-8222-222222222222"  # multi-tenant, SP not in AdminAgents
SINGLE_APP = "c3333333-3333-4333-8333-333333333333"  # single-tenant, SP in AdminAgents
EU_CSP_APP = "d4444444-4444-4444-8444-444444444444"  # the EU partner's pre-consented app
SECRET = "s3cret"
PERMISSIONS = ["User.Read.All", "Group.Read.All"]


def _app(client_id: str, name: str, **kw: object) -> dict[str, object]:
    return {
        "display_name": name,
        "client_id": client_id,
        "client_secret": SECRET,
        "application_permissions": PERMISSIONS,
        "delegated_permissions": ["Directory.AccessAsUser.All", "User.Read"],
        "redirect_uris": [LOOPBACK],
        **kw,
    }


def csp_world(settings: dict[str, object] | None = None) -> dict[str, object]:
    """Partners in NA and EU and customers that exercise each CSP rule:

    customer.com (NA, DAP, in effect), new.com (NA, DAP, still propagating), nodap.com (NA,
    relationship without DAP), orphan.com (NA, no partner), eu-customer.com (EU, of the NA
    partner: another region), gov.com (NA region but the US Gov cloud), eu-own.com (EU, of the
    EU partner)."""
    partner_users = [
        {"upn": "agent@partner.com", "password": PASSWORDS["agent"], "groups": ["AdminAgents"]},
        {
            "upn": "helpdesk@partner.com",
            "password": PASSWORDS["helpdesk"],
            "groups": ["HelpdeskAgents"],
        },
        {"upn": "sales@partner.com", "password": PASSWORDS["sales"], "groups": ["SalesAgents"]},
        {"upn": "plain@partner.com", "password": "P@ssw0rd-plain"},
        {
            "upn": "admin@partner.com",
            "password": PASSWORDS["admin"],
            "roles": ["Global Administrator"],
        },
    ]
    return {
        "settings": settings or {"propagation_delay": "3m"},
        "tenant": [
            {
                "domain": "partner.com",
                "kind": "partner",
                "region": "NA",
                "user": partner_users,
                "app": [
                    _app(CSP_APP, "CSP app", admin_agents=True),
                    _app(PLAIN_APP, "Plain app"),
                    _app(SINGLE_APP, "Single app", admin_agents=True, multi_tenant=False),
                ],
            },
            {
                "domain": "partner-eu.com",
                "kind": "partner",
                "region": "EU",
                "user": [
                    {
                        "upn": "agent@partner-eu.com",
                        "password": "P@ssw0rd-eu",
                        "groups": ["AdminAgents"],
                    }
                ],
                "app": [_app(EU_CSP_APP, "EU CSP app", admin_agents=True)],
            },
            {
                "domain": "customer.com",
                "partner": "partner.com",
                "user": [{"upn": "user@customer.com", "password": "P@ssw0rd-user"}],
            },
            {"domain": "new.com", "partner": "partner.com", "relationship": "new"},
            {"domain": "nodap.com", "partner": "partner.com", "dap": False},
            {"domain": "orphan.com"},
            {"domain": "eu-customer.com", "region": "EU", "partner": "partner.com"},
            {"domain": "gov.com", "cloud": "usgov", "partner": "partner.com"},
            {"domain": "eu-own.com", "region": "EU", "partner": "partner-eu.com"},
        ],
    }


def app_only(
    emu: Emulator, tenant_ref: str, client_id: str = CSP_APP, scope: str = GRAPH_DEFAULT
) -> requests.Response:
    return session(emu).post(
        f"{authority(emu, tenant_ref)}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": SECRET,
            "scope": scope,
        },
    )


def user_sign_in(
    emu: Emulator,
    tenant_ref: str,
    username: str,
    password: str,
    *,
    client_id: str = CSP_APP,
    scope: str = GRAPH_DEFAULT,
) -> requests.Response:
    """Sign in at /authorize; the 302 on success, the form (with its error) otherwise."""
    s = session(emu)
    page = s.get(
        f"{authority(emu, tenant_ref)}/oauth2/v2.0/authorize",
        params={
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": LOOPBACK,
            "scope": f"{scope} offline_access",
        },
    )
    return submit_sign_in(s, page, username, password)


def user_token(
    emu: Emulator,
    tenant_ref: str,
    username: str,
    password: str,
    *,
    client_id: str = CSP_APP,
    scope: str = GRAPH_DEFAULT,
) -> requests.Response:
    code = redirect_params(
        user_sign_in(emu, tenant_ref, username, password, client_id=client_id, scope=scope)
    )["code"]
    return session(emu).post(
        f"{authority(emu, tenant_ref)}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": client_id,
            "client_secret": SECRET,
            "code": code,
            "redirect_uri": LOOPBACK,
            "scope": f"{scope} offline_access",
        },
    )
