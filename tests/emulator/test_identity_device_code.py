"""The device code flow, v2 through MSAL's public client and v1 over raw HTTP, with every
polling answer of wire-facts §1.5."""

from __future__ import annotations

from typing import Any

import msal
import pytest

from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator
from tests.emulator.identity_helpers import (
    GLOBAL_ADMIN,
    GRAPH_CLI,
    NA_APP,
    NA_SECRET,
    PASSWORDS,
    aadsts,
    authority,
    claims,
    parse_page,
    session,
    tenant,
)


def _device_login(emu: Emulator, user_code: str, username: str, password: str, **extra: str) -> Any:
    return session(emu).post(
        f"{emu.endpoints.authority_host}/devicelogin",
        data={"user_code": user_code, "username": username, "password": password, **extra},
    )


def _start_v1(emu: Emulator, tenant_ref: str = "customer.com") -> dict[str, Any]:
    r = session(emu).post(
        f"{authority(emu, tenant_ref)}/oauth2/devicecode",
        data={"client_id": NA_APP, "resource": "https://graph.microsoft.com"},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _poll_v1(emu: Emulator, device_code: str, tenant_ref: str = "customer.com") -> Any:
    return session(emu).post(
        f"{authority(emu, tenant_ref)}/oauth2/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "client_id": NA_APP,
            "client_secret": NA_SECRET,
            "device_code": device_code,
            "resource": "https://graph.microsoft.com",
        },
    )


@pytest.mark.filterwarnings("ignore:Attempted too soon")
def test_msal_public_client_device_flow_v2(emulator: Emulator) -> None:
    app = msal.PublicClientApplication(
        GRAPH_CLI,
        authority=authority(emulator, "partner.com"),
        instance_discovery=False,
        http_client=session(emulator),
        http_cache={},
    )
    flow = app.initiate_device_flow(scopes=["User.Read", "Directory.Read.All"])
    assert flow["user_code"] and flow["verification_uri"].endswith("/devicelogin")
    assert flow["expires_in"] == 900 and flow["interval"] == 5
    assert flow["user_code"] in flow["message"]

    pending = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    assert pending["error"] == "authorization_pending"
    assert pending["error_codes"] == [70016]

    page = _device_login(emulator, flow["user_code"], "admin@partner.com", PASSWORDS["admin"])
    assert page.status_code == 200 and 'id="done"' in page.text

    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    assert "access_token" in result, result
    c = claims(result["access_token"])
    assert c["tid"] == tenant(emulator, "partner.com").id
    assert c["appid"] == GRAPH_CLI
    assert c["appidacr"] == "0"  # a public client: no credential
    assert set(c["scp"].split()) == {"User.Read", "Directory.Read.All"}
    assert "refresh_token" in result and "id_token" in result


def test_v1_device_flow_for_an_agent_at_a_customer(emulator: Emulator) -> None:
    started = _start_v1(emulator)
    assert started["verification_url"].endswith("/devicelogin")
    assert started["expires_in"] == "900" and started["interval"] == "5"

    pending = _poll_v1(emulator, started["device_code"])
    assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending")
    assert aadsts(pending.json()) == 70016
    assert pending.headers["cache-control"] == "no-store, no-cache"

    # The code is accepted with or without its dash, in any case.
    login = _device_login(
        emulator,
        started["user_code"].replace("-", "").lower(),
        "agent@partner.com",
        PASSWORDS["agent"],
    )
    assert 'id="done"' in login.text

    r = _poll_v1(emulator, started["device_code"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resource"] == "https://graph.microsoft.com"
    assert isinstance(body["expires_in"], str)
    c = claims(body["access_token"])
    assert c["tid"] == tenant(emulator, "customer.com").id
    assert c["wids"] == [GLOBAL_ADMIN]
    assert c["amr"] == ["pwd", "mfa"]
    again = _poll_v1(emulator, started["device_code"])
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


def test_polling_faster_than_the_interval_is_slow_down(emulator: Emulator) -> None:
    started = _start_v1(emulator)
    assert _poll_v1(emulator, started["device_code"]).json()["error"] == "authorization_pending"
    assert _poll_v1(emulator, started["device_code"]).json()["error"] == "slow_down"


def test_polling_at_the_interval_stays_pending(make_emulator: MakeEmulator) -> None:
    emu = make_emulator()
    started = _start_v1(emu)
    assert _poll_v1(emu, started["device_code"]).json()["error"] == "authorization_pending"
    emu.advance(5)
    assert _poll_v1(emu, started["device_code"]).json()["error"] == "authorization_pending"


def test_expired_device_code(make_emulator: MakeEmulator) -> None:
    emu = make_emulator()
    started = _start_v1(emu)
    emu.advance(901)
    r = _poll_v1(emu, started["device_code"])
    assert (r.status_code, r.json()["error"], aadsts(r.json())) == (400, "expired_token", 70020)


def test_declined_device_code(emulator: Emulator) -> None:
    started = _start_v1(emulator)
    page = session(emulator).post(
        f"{emulator.endpoints.authority_host}/devicelogin",
        data={"user_code": started["user_code"], "action": "decline"},
    )
    assert page.status_code == 200
    r = _poll_v1(emulator, started["device_code"])
    assert r.json()["error"] == "authorization_declined"


def test_unknown_device_code_is_bad_verification_code(emulator: Emulator) -> None:
    r = _poll_v1(emulator, "DAQABAAEAAAD-not-a-device-code")
    assert (r.status_code, r.json()["error"]) == (400, "bad_verification_code")


def test_devicelogin_refuses_a_sales_agent_and_the_device_keeps_waiting(
    emulator: Emulator,
) -> None:
    started = _start_v1(emulator)
    page = _device_login(emulator, started["user_code"], "sales@partner.com", PASSWORDS["sales"])
    assert parse_page(page.text).error_code == 50020
    assert _poll_v1(emulator, started["device_code"]).json()["error"] == "authorization_pending"


def test_devicelogin_with_an_unknown_user_code(emulator: Emulator) -> None:
    page = _device_login(emulator, "ABCD-EFGH", "agent@partner.com", PASSWORDS["agent"])
    assert parse_page(page.text).error_code is not None


def test_confidential_client_polling_without_its_secret_is_7000218(emulator: Emulator) -> None:
    started = _start_v1(emulator)
    r = session(emulator).post(
        f"{authority(emulator, 'customer.com')}/oauth2/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "client_id": NA_APP,
            "device_code": started["device_code"],
            "resource": "https://graph.microsoft.com",
        },
    )
    assert (r.status_code, aadsts(r.json())) == (401, 7000218)


def test_devicecode_endpoint_refuses_an_unknown_client(emulator: Emulator) -> None:
    r = session(emulator).post(
        f"{authority(emulator, 'customer.com')}/oauth2/v2.0/devicecode",
        data={"client_id": "99999999-9999-4999-8999-999999999999", "scope": "User.Read"},
    )
    assert (r.status_code, aadsts(r.json())) == (400, 700016)
