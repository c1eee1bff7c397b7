"""The authorization code flow: the seed's v1 flow over raw HTTP, MSAL's v2 flow, and the
code's bindings (one-time, short-lived, client, tenant, redirect URI, PKCE)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msal
import pytest

from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator, tls
from tests.emulator.identity_helpers import (
    GLOBAL_ADMIN,
    GRAPH_CLI,
    GRAPH_DEFAULT,
    LOOPBACK,
    NA_APP,
    NA_SECRET,
    PASSWORDS,
    USER_TEMPLATE,
    aadsts,
    authority,
    cca,
    claims,
    client_info,
    parse_page,
    redirect_params,
    session,
    sign_in_for_code,
    submit_sign_in,
    tenant,
)


def test_seed_flow_over_raw_http_v1(emulator: Emulator) -> None:
    """The seed description, step by step: an agent of partner.com signs in against the
    customer's authority and gets a v1 token for the customer tenant."""
    host = emulator.endpoints.authority_host
    with httpx.Client(verify=tls(emulator), trust_env=False) as http:
        page = http.get(
            f"{host}/customer.com/oauth2/authorize",
            params={
                "client_id": NA_APP,
                "response_type": "code",
                "redirect_uri": LOOPBACK,
                "resource": "https://graph.microsoft.com",
                "state": "seed-state",
            },
        )
        assert page.status_code == 200
        form = next(f for f in parse_page(page.text).forms if f["id"] == "signin")
        fields = {**form["fields"], "username": "agent@partner.com", "password": PASSWORDS["agent"]}
        reply = http.post(str(page.url.join(form["action"])), data=fields)
        assert reply.status_code == 302
        location = urlsplit(reply.headers["location"])
        assert f"{location.scheme}://{location.netloc}" == LOOPBACK
        query = {k: v[0] for k, v in parse_qs(location.query).items()}
        assert query["state"] == "seed-state"

        token = http.post(
            f"{host}/customer.com/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "client_id": NA_APP,
                "code": query["code"],
                "redirect_uri": LOOPBACK,
                "resource": "https://graph.microsoft.com",
                "client_secret": NA_SECRET,
            },
        )
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["resource"] == "https://graph.microsoft.com"
    for key in ("expires_in", "ext_expires_in", "expires_on", "not_before"):
        assert isinstance(body[key], str) and body[key].isdigit()
    assert body["refresh_token"]
    c = claims(body["access_token"])
    customer = tenant(emulator, "customer.com")
    partner = tenant(emulator, "partner.com")
    agent = partner.user_by_upn("agent@partner.com")
    assert agent is not None
    assert c["tid"] == customer.id
    assert c["aud"] == "https://graph.microsoft.com"
    assert c["scp"] == "Directory.AccessAsUser.All"
    assert body["scope"] == "Directory.AccessAsUser.All"
    assert GLOBAL_ADMIN in c["wids"]
    assert c["idtyp"] == "user"
    assert c["idp"] == f"https://sts.windows.net/{partner.id}/"
    assert c["aai"] == f"tenant: {partner.id}, object: {agent['id']}"
    assert "oid" not in c  # a partner agent has no object in the customer tenant
    assert c["amr"] == ["pwd", "mfa"]


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _msal_sign_in(
    emu: Emulator, tenant_ref: str, username: str, password: str, scopes: list[str], **kw: Any
) -> tuple[Any, dict[str, Any]]:
    app = cca(emu, tenant_ref, **kw)
    flow = app.initiate_auth_code_flow(
        scopes, redirect_uri=LOOPBACK, login_hint=username, response_mode="form_post"
    )
    s = session(emu)
    page = s.get(flow["auth_uri"])
    form = next(f for f in parse_page(page.text).forms if f["id"] == "signin")
    assert form["fields"]["username"] == username  # login_hint prefills the form
    reply = submit_sign_in(s, page, username, password)
    # form_post: the page auto-submits the code to the redirect URI; read what it would post.
    posted = next(f for f in parse_page(reply.text).forms if f["id"] == "response")
    assert posted["action"] == LOOPBACK
    result = app.acquire_token_by_auth_code_flow(flow, posted["fields"])
    return app, result


def test_msal_auth_code_flow_v2_for_an_agent_at_a_customer(emulator: Emulator) -> None:
    app, result = _msal_sign_in(
        emulator, "customer.com", "agent@partner.com", PASSWORDS["agent"], [GRAPH_DEFAULT]
    )
    assert "access_token" in result, result
    customer = tenant(emulator, "customer.com")
    partner = tenant(emulator, "partner.com")
    agent = partner.user_by_upn("agent@partner.com")
    assert agent is not None
    c = claims(result["access_token"])
    assert c["tid"] == customer.id
    assert c["scp"] == "Directory.AccessAsUser.All"
    assert c["wids"] == [GLOBAL_ADMIN]
    # client_info names the agent's home: MSAL's account is the partner account.
    assert client_info(result["client_info"]) == {"uid": agent["id"], "utid": partner.id}
    id_token = result["id_token_claims"]
    assert id_token["aud"] == NA_APP
    assert id_token["iss"] == f"{emulator.endpoints.authority_host}/{customer.id}/v2.0"
    assert id_token["tid"] == customer.id
    assert id_token["preferred_username"] == "agent@partner.com"
    assert id_token["ver"] == "2.0"
    assert GRAPH_DEFAULT in result["scope"]
    # The id token is signed by the emulator's published key.
    s = session(emulator)
    jwks = jwt.PyJWKSet.from_dict(
        s.get(f"{authority(emulator, customer.id)}/discovery/v2.0/keys").json()
    )
    jwt.decode(
        result["id_token"],
        jwks.keys[0].key,
        algorithms=["RS256"],
        audience=NA_APP,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    # MSAL caches it under the requested scope.
    account = app.get_accounts()[0]
    assert account["home_account_id"] == f"{agent['id']}.{partner.id}"
    silent = app.acquire_token_silent([GRAPH_DEFAULT], account=account)
    assert silent is not None and silent["token_source"] == "cache"


def test_own_user_token_carries_oid_and_directory_roles(emulator: Emulator) -> None:
    _, result = _msal_sign_in(
        emulator, "partner.com", "admin@partner.com", PASSWORDS["admin"], [GRAPH_DEFAULT]
    )
    partner = tenant(emulator, "partner.com")
    admin = partner.user_by_upn("admin@partner.com")
    assert admin is not None
    c = claims(result["access_token"])
    assert c["oid"] == admin["id"]
    assert c["upn"] == "admin@partner.com"
    assert c["idp"] == c["iss"] == f"https://sts.windows.net/{partner.id}/"
    assert set(c["wids"]) == {GLOBAL_ADMIN, USER_TEMPLATE}
    assert c["scp"] == "Directory.AccessAsUser.All"


def test_form_post_response_mode(emulator: Emulator) -> None:
    s = session(emulator)
    page = s.get(
        f"{authority(emulator, 'customer.com')}/oauth2/v2.0/authorize",
        params={
            "client_id": NA_APP,
            "response_type": "code",
            "redirect_uri": LOOPBACK,
            "scope": f"{GRAPH_DEFAULT} openid",
            "state": "st",
            "response_mode": "form_post",
        },
    )
    reply = submit_sign_in(s, page, "agent@partner.com", PASSWORDS["agent"])
    assert reply.status_code == 200
    form = next(f for f in parse_page(reply.text).forms if f["id"] == "response")
    assert form["action"] == LOOPBACK
    assert form["fields"]["state"] == "st" and form["fields"]["code"]
    assert "submit()" in reply.text


def test_a_script_can_post_credentials_straight_to_authorize(emulator: Emulator) -> None:
    reply = session(emulator).post(
        f"{authority(emulator, 'customer.com')}/oauth2/v2.0/authorize",
        data={
            "client_id": NA_APP,
            "response_type": "code",
            "redirect_uri": "http://localhost:51234/callback",
            "scope": GRAPH_DEFAULT,
            "username": "agent@partner.com",
            "password": PASSWORDS["agent"],
        },
        allow_redirects=False,
    )
    # Loopback rule: a registered http://localhost matches any port (and here a path: no).
    assert reply.status_code == 400
    assert parse_page(reply.text).error_code == 50011


def test_loopback_redirect_matches_any_port(emulator: Emulator) -> None:
    _, challenge = _pkce()
    params = sign_in_for_code(
        session(emulator),
        f"{authority(emulator, 'customer.com')}/oauth2/v2.0/authorize",
        {
            "client_id": NA_APP,
            "response_type": "code",
            "redirect_uri": "http://localhost:51234",
            "scope": GRAPH_DEFAULT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        "agent@partner.com",
        PASSWORDS["agent"],
    )
    assert params["code"]


def test_wrong_password_shows_the_form_again_with_50126(emulator: Emulator) -> None:
    s = session(emulator)
    page = s.get(
        f"{authority(emulator, 'customer.com')}/oauth2/authorize",
        params={
            "client_id": NA_APP,
            "response_type": "code",
            "redirect_uri": LOOPBACK,
            "resource": "https://graph.microsoft.com",
        },
    )
    reply = submit_sign_in(s, page, "agent@partner.com", "wrong")
    assert reply.status_code == 200
    parsed = parse_page(reply.text)
    assert parsed.error_code == 50126
    assert "AADSTS50126" in parsed.error_text
    assert any(f["id"] == "signin" for f in parsed.forms)


def test_unknown_user_is_50034(emulator: Emulator) -> None:
    s = session(emulator)
    page = s.get(
        f"{authority(emulator, 'customer.com')}/oauth2/v2.0/authorize",
        params={
            "client_id": NA_APP,
            "response_type": "code",
            "redirect_uri": LOOPBACK,
            "scope": GRAPH_DEFAULT,
        },
    )
    reply = submit_sign_in(s, page, "ghost@partner.com", "x")
    assert parse_page(reply.text).error_code == 50034


def test_unregistered_redirect_uri_is_an_error_page_not_a_redirect(emulator: Emulator) -> None:
    r = session(emulator).get(
        f"{authority(emulator, 'customer.com')}/oauth2/v2.0/authorize",
        params={
            "client_id": NA_APP,
            "response_type": "code",
            "redirect_uri": "https://evil.example/cb",
            "scope": GRAPH_DEFAULT,
        },
        allow_redirects=False,
    )
    assert r.status_code == 400
    assert parse_page(r.text).error_code == 50011


def test_unsupported_response_type_goes_back_to_the_app(emulator: Emulator) -> None:
    r = session(emulator).get(
        f"{authority(emulator, 'customer.com')}/oauth2/v2.0/authorize",
        params={
            "client_id": NA_APP,
            "response_type": "token",
            "redirect_uri": LOOPBACK,
            "scope": GRAPH_DEFAULT,
            "state": "s1",
        },
        allow_redirects=False,
    )
    params = redirect_params(r)
    assert params["error"] == "unsupported_response_type"
    assert params["state"] == "s1"
    assert params["error_description"].startswith("AADSTS700054")


def test_unknown_tenant_at_authorize_is_an_error_page(emulator: Emulator) -> None:
    r = session(emulator).get(
        f"{emulator.endpoints.authority_host}/nowhere.example/oauth2/v2.0/authorize",
        params={
            "client_id": NA_APP,
            "response_type": "code",
            "redirect_uri": LOOPBACK,
            "scope": GRAPH_DEFAULT,
        },
    )
    assert r.status_code == 400
    assert parse_page(r.text).error_code == 90002


# -- the code's bindings ---------------------------------------------------------------------------


def _code(emu: Emulator, tenant_ref: str = "customer.com", **extra: str) -> dict[str, str]:
    return sign_in_for_code(
        session(emu),
        f"{authority(emu, tenant_ref)}/oauth2/v2.0/authorize",
        {
            "client_id": NA_APP,
            "response_type": "code",
            "redirect_uri": LOOPBACK,
            "scope": f"{GRAPH_DEFAULT} offline_access",
            **extra,
        },
        "agent@partner.com",
        PASSWORDS["agent"],
    )


def _redeem(emu: Emulator, code: str, tenant_ref: str = "customer.com", **extra: str) -> Any:
    return session(emu).post(
        f"{authority(emu, tenant_ref)}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": NA_APP,
            "client_secret": NA_SECRET,
            "code": code,
            "redirect_uri": LOOPBACK,
            "scope": GRAPH_DEFAULT,
            **extra,
        },
    )


def test_code_is_one_time_54005(emulator: Emulator) -> None:
    code = _code(emulator)["code"]
    assert _redeem(emulator, code).status_code == 200
    again = _redeem(emulator, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert aadsts(again.json()) == 54005


def test_code_expires_after_ten_minutes_70008(make_emulator: MakeEmulator) -> None:
    emu = make_emulator()
    code = _code(emu)["code"]
    emu.advance(601)
    r = _redeem(emu, code)
    assert (r.status_code, r.json()["error"], aadsts(r.json())) == (400, "invalid_grant", 70008)


def test_code_is_bound_to_its_tenant_700005(emulator: Emulator) -> None:
    code = _code(emulator)["code"]
    r = _redeem(emulator, code, tenant_ref="partner.com")
    assert aadsts(r.json()) == 700005


def test_code_is_bound_to_its_redirect_uri_500112(emulator: Emulator) -> None:
    code = _code(emulator)["code"]
    r = _redeem(emulator, code, redirect_uri="http://localhost:9999")
    assert aadsts(r.json()) == 500112


def test_code_is_bound_to_its_client(emulator: Emulator) -> None:
    code = _code(emulator)["code"]
    r = session(emulator).post(
        f"{authority(emulator, 'customer.com')}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": "0f4d3c2b-8a91-4f6e-b7d5-2c1e9a8b7f60",
            "client_secret": "app-secret-eu",
            "code": code,
            "redirect_uri": LOOPBACK,
            "scope": GRAPH_DEFAULT,
        },
    )
    assert (r.json()["error"], aadsts(r.json())) == ("invalid_grant", 70000)


@pytest.mark.parametrize(("verifier", "expected"), [(None, 50148), ("not-the-verifier", 501481)])
def test_pkce_is_checked(emulator: Emulator, verifier: str | None, expected: int) -> None:
    _, challenge = _pkce()
    code = _code(emulator, code_challenge=challenge, code_challenge_method="S256")["code"]
    extra = {"code_verifier": verifier} if verifier else {}
    r = _redeem(emulator, code, **extra)
    assert (r.status_code, aadsts(r.json())) == (400, expected)


def test_pkce_with_the_right_verifier(emulator: Emulator) -> None:
    verifier, challenge = _pkce()
    code = _code(emulator, code_challenge=challenge, code_challenge_method="S256")["code"]
    r = _redeem(emulator, code, code_verifier=verifier)
    assert r.status_code == 200, r.text
    assert r.json()["refresh_token"]


def test_code_redeemed_without_a_secret_is_7000218(emulator: Emulator) -> None:
    code = _code(emulator)["code"]
    r = session(emulator).post(
        f"{authority(emulator, 'customer.com')}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": NA_APP,
            "code": code,
            "redirect_uri": LOOPBACK,
            "scope": GRAPH_DEFAULT,
        },
    )
    assert (r.status_code, aadsts(r.json())) == (401, 7000218)


def test_graph_cli_is_a_public_client_in_every_tenant(emulator: Emulator) -> None:
    app = msal.PublicClientApplication(
        GRAPH_CLI,
        authority=authority(emulator, "customer.com"),
        instance_discovery=False,
        http_client=session(emulator),
        http_cache={},
    )
    flow = app.initiate_auth_code_flow(
        ["User.Read.All", "Group.Read.All"],
        redirect_uri="http://localhost:8400",
        response_mode="form_post",
    )
    s = session(emulator)
    reply = submit_sign_in(s, s.get(flow["auth_uri"]), "agent@partner.com", PASSWORDS["agent"])
    posted = next(f for f in parse_page(reply.text).forms if f["id"] == "response")
    result = app.acquire_token_by_auth_code_flow(flow, posted["fields"])
    assert "access_token" in result, result
    c = claims(result["access_token"])
    assert c["appid"] == GRAPH_CLI and c["appidacr"] == "0"
    assert set(c["scp"].split()) == {"User.Read.All", "Group.Read.All"}
    assert c["tid"] == tenant(emulator, "customer.com").id
    assert c["wids"] == [GLOBAL_ADMIN]


def test_organizations_signs_in_at_the_users_home_tenant(emulator: Emulator) -> None:
    params = sign_in_for_code(
        session(emulator),
        f"{authority(emulator, 'organizations')}/oauth2/v2.0/authorize",
        {
            "client_id": NA_APP,
            "response_type": "code",
            "redirect_uri": LOOPBACK,
            "scope": GRAPH_DEFAULT,
        },
        "admin@partner.com",
        PASSWORDS["admin"],
    )
    r = _redeem(emulator, params["code"], tenant_ref="organizations")
    assert r.status_code == 200, r.text
    assert claims(r.json()["access_token"])["tid"] == tenant(emulator, "partner.com").id


def test_prompt_none_without_a_session_is_login_required(emulator: Emulator) -> None:
    r = session(emulator).get(
        f"{authority(emulator, 'customer.com')}/oauth2/v2.0/authorize",
        params={
            "client_id": NA_APP,
            "response_type": "code",
            "redirect_uri": LOOPBACK,
            "scope": GRAPH_DEFAULT,
            "prompt": "none",
            "state": "quiet",
        },
        allow_redirects=False,
    )
    params = redirect_params(r)
    assert (params["error"], params["state"]) == ("login_required", "quiet")
    assert params["error_description"].startswith("AADSTS50058")
