"""`cspgraph onboard --gdap`, end to end on the emulator: invite → the customer's Global
Administrator approves in headless Chromium (the link the command printed) → access assignments
active → consent → propagation (the first app-only token denied, a new one works) → smoke test →
`cspgraph sync` of that customer. Every wait runs on the emulator's world clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import Result

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import load_world_data
from cspgraph.fleet.store import Store
from cspgraph.gdap.roles import sync_application_permissions
from cspgraph.graph.scope import covers
from tests.e2e.browser import open_and_sign_in, pinned_chromium, requires_chromium, run_cli
from tests.e2e.test_gdap_approval_browser import admin_of
from tests.emulator.gdap_world import APP_ID, PARTNER
from tests.emulator.graph_tokens import tenant_of
from tests.gdap.conftest import SECRET_ENV, gdap_world_for_ops, signed_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = requires_chromium

NEWCO = "newco.com"  # a customer of the partner without DAP, GDAP or consent: today's new one


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gdap-onboarding-emulator")


@pytest.fixture(scope="module")
def chromium(state_dir: Path) -> Iterator[Browser]:
    with pinned_chromium(state_dir) as browser:
        yield browser


@pytest.fixture
def emu(state_dir: Path) -> Iterator[Emulator]:
    data = gdap_world_for_ops()
    data["tenant"].append(
        {"domain": NEWCO, "partner": PARTNER, "dap": False,
         "generate": {"users": 6, "groups": 2, "devices": 3, "managed_devices": 2, "seed": 9}}
    )  # fmt: skip
    with Emulator(lambda: load_world_data(data), state_dir=state_dir) as emulator:
        yield emulator


def cspgraph(config: Path, *args: str) -> Result:
    result = run_cli([*args, "--config", str(config)], env=SECRET_ENV)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def approve_in_chromium(chromium: Browser, emu: Emulator, link: str) -> None:
    context = chromium.new_context()
    try:
        page = context.new_page()
        username, password = admin_of(emu, NEWCO)
        open_and_sign_in(page, link, username, password, "#approve")
        assert page.get_attribute("#result", "data-status") == "approved"
    finally:
        context.close()


def app_tokens(emu: Emulator, domain: str) -> list[Any]:
    tenant = tenant_of(emu, domain).id
    return [
        t for t in emu.world.issued_tokens
        if t.tenant_id == tenant and t.client_id == APP_ID and t.kind == "app"
    ]  # fmt: skip


def test_a_new_gdap_customer_is_onboarded_end_to_end_and_synced(
    chromium: Browser, emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path)
    states = tmp_path / "onboarding"
    onboard = [
        "onboard", "--gdap", "--domain", NEWCO, "--roles", "cspgraph", "--create-groups",
        "--group", "Cloud Application Administrator=GDAP App Admins",
        "--group", "Privileged Role Administrator=GDAP App Admins",
        "--emulator-clock", "--state-dir", str(states),
    ]  # fmt: skip

    # 1. Invite: the run stops at the customer's approval (exit 3) and says where to send it.
    first = cspgraph(config, *onboard)
    assert first.exit_code == 3, first.output
    invited = json.loads(first.stdout)
    assert invited["state"] == "waiting_for_approval"
    assert "approval" in first.stderr
    (state_file,) = states.glob("gdap-*.json")
    assert state_file.stat().st_mode & 0o777 == 0o600
    in_flight = cspgraph(config, "onboard", "--status", "--state-dir", str(states))
    assert in_flight.exit_code == 0, in_flight.output
    (waiting,) = json.loads(in_flight.stdout)
    assert (waiting["domain"], waiting["kind"], waiting["link"]) == (
        NEWCO, "gdap", invited["approval_link"],
    )  # fmt: skip

    # Run again before the approval: still waiting, nothing made twice.
    again = cspgraph(config, *onboard)
    assert again.exit_code == 3 and json.loads(again.stdout)["resumed"] is True
    assert len([r for r in emu.world.gdap.relationships.values()
                if r.display_name == f"cspgraph-{NEWCO}"]) == 1  # fmt: skip

    # 2. The customer's Global Administrator approves at the printed link, in Chromium.
    approve_in_chromium(chromium, emu, invited["approval_link"])

    # 3. Resume: activation, assignments, consent, propagation, smoke test.
    done = cspgraph(config, *onboard)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["state"] == "done"
    assert [h["state"] for h in result["history"]][-5:] == [
        "activating", "assigning", "consenting", "verifying", "done",
    ]  # fmt: skip
    # Propagation: the first app-only token after the consent was denied what the sync needs;
    # a newly acquired one carried it.
    attempts = result["attempts"]
    assert attempts[0]["ok"] is False and attempts[-1]["ok"] is True
    tokens = app_tokens(emu, NEWCO)
    assert len({t.jti for t in tokens}) >= 2
    needed = sync_application_permissions()
    assert not all(covers(tokens[0].roles, p) for p in needed)
    assert all(covers(tokens[-1].roles, p) for p in needed)
    assert result["users_seen"] == 5  # $top=5 of the customer's users
    assert json.loads(cspgraph(config, "onboard", "--status", "--state-dir",
                               str(states)).stdout) == []  # fmt: skip

    # The access assignments are active, with the new group for the role nobody held.
    groups = {g["displayName"] for g in tenant_of(emu, PARTNER).objects["groups"].values()}
    assert "cspgraph GDAP Global Reader" in groups
    (rel,) = [r for r in emu.world.gdap.relationships.values()
              if r.display_name == f"cspgraph-{NEWCO}"]  # fmt: skip
    now = emu.world.clock.now()
    assert {a.status(now) for a in rel.assignments.values()} == {"active"}

    # 4. The fleet sync reaches the customer with the app's own token.
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    synced = cspgraph(config, "sync", "--customers", NEWCO, "--db", db)
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.stdout)["totals"]["status"] == {"ok": 1}
    newco = tenant_of(emu, NEWCO)
    with Store.open(db) as store:
        assert store.counts(newco.id)["users"] == len(newco.objects["users"])
