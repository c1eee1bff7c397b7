"""A partner agent signs in through a real browser, v2 and v1, and then `cspgraph call --agent`
reads the customer's users with the agent's delegated token.

Debian's Chromium, driven by Playwright (sync API), opens the authorize URL on the emulator's
login host over real TLS, gets the sign-in form, is filled in as agent@partner.com and submits;
the emulator answers with its form_post page, whose script posts the code to cspgraph's one-shot
loopback listener, exactly as it happens on a partner's desktop. The browser trusts the emulator's
server key alone (``--ignore-certificate-errors-spki-list``), not every certificate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner, Result

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import demo_world
from cspgraph.cli import config_cmd
from cspgraph.config import load_config
from cspgraph.identity import TokenProvider
from tests.client.conftest import AGENT, AGENT_PASSWORD, Control
from tests.e2e.browser import STEP_TIMEOUT_MS, pinned_chromium, requires_chromium, run_cli

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = requires_chromium


def write_config(emu: Emulator, where: Path) -> Path:
    path = where / "cfg" / "config.toml"
    result = CliRunner().invoke(
        config_cmd.app, ["init", "--from-emulator", str(emu.endpoints_file), "--path", str(path)]
    )
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One emulator state (CA, server key) for the module, so one browser pinned to that key
    serves every test, while each test still gets an emulator of its own."""
    return tmp_path_factory.mktemp("browser-emulator-state")


@pytest.fixture(scope="module")
def chromium(state_dir: Path) -> Iterator[Browser]:
    with pinned_chromium(state_dir) as browser:
        yield browser


@pytest.fixture
def emu(state_dir: Path) -> Iterator[Emulator]:
    with Emulator(demo_world, state_dir=state_dir) as emulator:
        yield emulator


def sign_in_with_chromium(browser: Browser, auth_url: str, redirect_uri: str, shot: Path) -> str:
    """Open ``auth_url``, screenshot the form, sign in as the NA agent; the text the loopback
    listener showed the browser at the end."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(STEP_TIMEOUT_MS)
        response = page.goto(auth_url)
        assert response is not None and response.status == 200
        assert page.title() == "Sign in to your account"
        page.screenshot(path=str(shot), full_page=True)
        page.fill("#username", AGENT["NA"])
        page.fill("#password", AGENT_PASSWORD)
        page.click("#submit")
        # The emulator's form_post page submits itself to the loopback listener.
        page.wait_for_url(lambda url: url.startswith(redirect_uri))
        return page.inner_text("body")
    finally:
        context.close()


def cspgraph(*args: str) -> Result:
    return run_cli(args)


@pytest.mark.parametrize("protocol", ["v2", "v1"])
def test_agent_signs_in_in_chromium_then_cspgraph_call_reads_users_as_the_agent(
    protocol: str, chromium: Browser, emu: Emulator, tmp_path: Path
) -> None:
    control = Control(emu)
    customer = control.get("tenants/customer.com")
    world_users = {u["id"] for u in control.get("tenants/customer.com/users")["value"]}
    config_path = write_config(emu, tmp_path)
    shot = tmp_path / f"sign-in-{protocol}.png"

    with (
        TokenProvider(load_config(config_path)) as provider,
        provider.agent().begin_sign_in("customer.com", v1=protocol == "v1") as pending,
    ):
        landed = sign_in_with_chromium(chromium, pending.auth_url, pending.redirect_uri, shot)
        assert "Signed in" in landed
        result = pending.wait(timeout=STEP_TIMEOUT_MS / 1000)
    assert result.account.username == AGENT["NA"]
    assert (result.protocol, result.tenant_id, result.region) == (protocol, customer["id"], "NA")

    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 1000

    # A new command, the same configuration and token cache: the agent's delegated token.
    config = ["--config", str(config_path)]
    call = cspgraph("call", "GET", "/beta/users", "--customer", "customer.com", "--agent", "--all",
                    *config)  # fmt: skip
    assert call.exit_code == 0, call.output
    users = json.loads(call.stdout)
    assert {u["id"] for u in users} == world_users
    assert len(users) == len(world_users)
    # Only the sign-in's token exists for the customer: nothing app-only was asked for.
    grants = [t["grant"] for t in control.tokens(tenant=customer["id"])]
    assert grants == ["authorization_code"]

    # The same sign-in serves another customer of the region through its refresh token.
    other = next(t for t in control.customers("NA") if t["domain"] != "customer.com")
    again = cspgraph("call", "GET", "/v1.0/users/$count", "--customer", other["domain"], "--agent",
                     *config)  # fmt: skip
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == control.get(f"tenants/{other['id']}")["counts"]["users"]
    assert [t["grant"] for t in control.tokens(tenant=other["id"])] == ["refresh_token"]
