"""GDAP operations against the emulator: the GDAP test world (tests/emulator/gdap_world.py), a
configuration for its partner, and a technician signed in through the emulator's sign-in form
(the way a person's browser would), so the client holds a real refresh token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from typer.testing import CliRunner, Result

from csp_emulator.server import Emulator
from cspgraph.cli.main import app
from cspgraph.config import Config, config_from_data
from cspgraph.gdap.roles import sync_application_permissions
from cspgraph.gdap.session import GdapSession
from cspgraph.identity import TokenProvider
from tests.client.test_agent_login import fill_sign_in
from tests.conftest import tls
from tests.emulator.gdap_world import APP_ID, APP_SECRET, PARTNER, PASSWORDS, gdap_world

MakeEmulator = Callable[..., Emulator]
SECRET_ENV = {"CSPGRAPH_SECRET_NA": APP_SECRET}
AGENT = "agent@partner.com"
FRESH_CUSTOMER = "freshco.com"


def config_data(emu: Emulator, tmp_path: Path) -> dict[str, Any]:
    return {
        "emulator": str(emu.endpoints_file),
        "token_cache": str(tmp_path / "tokens.json"),
        "discovery_cache": "memory",
        "regions": {
            "NA": {
                "partner_tenant": PARTNER,
                "client_id": APP_ID,
                "client_secret_env": "CSPGRAPH_SECRET_NA",
            }
        },
    }


def gdap_config(emu: Emulator, tmp_path: Path) -> Config:
    return config_from_data(config_data(emu, tmp_path), base_dir=tmp_path, env=SECRET_ENV)


def config_file(emu: Emulator, tmp_path: Path) -> Path:
    """The same configuration as a file, for the CLI (same token cache: a technician signed in
    through the library is signed in for the commands too)."""
    import tomli_w

    path = tmp_path / "config.toml"
    path.write_bytes(tomli_w.dumps(config_data(emu, tmp_path)).encode())
    return path


def signed_in(emu: Emulator, tmp_path: Path, upn: str = AGENT) -> Path:
    """A configuration file whose token cache holds ``upn``'s sign-in."""
    with TokenProvider(gdap_config(emu, tmp_path), workers=1) as provider:
        sign_in_agent(emu, provider, upn)
    return config_file(emu, tmp_path)


def gdap_cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["gdap", *args, "--config", str(config)], env=SECRET_ENV)


def sign_in_agent(
    emu: Emulator, provider: TokenProvider, upn: str = AGENT, password: str | None = None
) -> None:
    """A technician signs in once, at the partner tenant, through the emulator's form."""
    secret = password or PASSWORDS[upn.split("@")[0]]
    with provider.agent().begin_sign_in(PARTNER) as pending:
        landed = fill_sign_in(emu, pending.auth_url, upn, secret)
        assert landed.status_code == 200, landed.text
        pending.wait(timeout=30)


def consent_as_the_customers_admin(emu: Emulator, link: str, upn: str, password: str) -> str:
    """What the customer's Global Administrator's browser does at the /adminconsent link: the
    sign-in form, filled and sent; returns where Entra sends the browser back to."""
    with httpx.Client(verify=tls(emu)) as browser:
        page = browser.get(link)
        assert page.status_code == 200 and 'id="signin"' in page.text, page.text
        params = dict(parse_qsl(urlsplit(link).query))
        answer = browser.post(link, data={**params, "username": upn, "password": password})
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def gdap_world_for_ops(*, grant_app_roles: bool = True, **settings: Any) -> dict[str, Any]:
    """The GDAP test world; its technician agent@ may also create the partner's security groups
    (Groups Administrator in the partner tenant), as `gdap assign --create-groups` needs.
    Without ``grant_app_roles`` the Freshco relationship lacks Privileged Role Administrator, so
    agent@ may not grant Microsoft Graph's app roles there, and the app's registration asks for
    every application permission the sync needs (what a customer's /adminconsent grants)."""
    world = gdap_world(**{"refresh_token_lifetime": "1000d", **settings})
    app_admin_roles = ["Cloud Application Administrator", "Privileged Role Administrator"]
    if not grant_app_roles:
        app_admin_roles = app_admin_roles[:1]
        app = world["tenant"][0]["app"][0]
        app["application_permissions"] = sorted(
            {*app["application_permissions"], *sync_application_permissions()}
        )
    agent = next(u for u in world["tenant"][0]["user"] if u["upn"] == AGENT)
    agent["roles"] = ["Groups Administrator"]
    # A GDAP customer the app has never been consented in, reached through an active
    # relationship whose assignments give agent@ Directory Readers, Cloud Application
    # Administrator (Partner Center's consent) and Privileged Role Administrator (Graph's app
    # roles).
    world["tenant"].append(
        {"domain": FRESH_CUSTOMER, "partner": PARTNER, "dap": False,
         "generate": {"users": 4, "groups": 2, "devices": 2, "managed_devices": 2, "seed": 5}}
    )  # fmt: skip
    world["gdap"].append(
        {
            "partner": PARTNER,
            "customer": FRESH_CUSTOMER,
            "display_name": "Fabrikam-GDAP-Freshco",
            "roles": ["Directory Readers", *app_admin_roles],
            "activated_ago": "2d",
            "assignment": [
                {"group": "GDAP Readers", "roles": ["Directory Readers"]},
                {"group": "GDAP App Admins", "roles": app_admin_roles},
            ],
        }
    )
    return world


@pytest.fixture
def emu(make_emulator: MakeEmulator) -> Emulator:
    # The technician's refresh token outlives the years these tests move the world clock (an
    # id_token is checked against this machine's clock, so nobody signs in after a move).
    return make_emulator(gdap_world_for_ops())


@pytest.fixture
def config(emu: Emulator, tmp_path: Path) -> Config:
    return gdap_config(emu, tmp_path)


@pytest.fixture
async def provider(config: Config, emu: Emulator) -> AsyncIterator[TokenProvider]:
    async with TokenProvider(config, workers=2) as made:
        sign_in_agent(emu, made)
        yield made


@pytest.fixture
async def gdap(provider: TokenProvider) -> AsyncIterator[GdapSession]:
    async with GdapSession.open(provider) as session:
        yield session
