"""`cspgraph customers invite` and `cspgraph onboard --existing`: an existing tenant invited,
its acceptance waited for, then the original rule (3 minutes, then +60 s with a new token) before
it is declared reachable; end to end on the emulator's world clock."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import tomli_w
from typer.testing import CliRunner

from cspgraph.cli.main import app
from cspgraph.gdap.consent import admin_consent_link
from tests.conftest import MakeEmulator
from tests.emulator.graph_tokens import tenant_of
from tests.fleet_gdap.mixed_world import GDAP, mixed_world_data
from tests.fleet_gdap.test_delegated import sign_in_service_account, with_service_account
from tests.fleet_helpers import SECRET_ENV, Control, config_for
from tests.gdap.conftest import consent_as_the_customers_admin

BAKERY = GDAP["harborview"]  # a stand-alone tenant in the partner's region


def test_an_existing_tenant_is_invited_accepted_and_declared_reachable_after_the_rule(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    data = mixed_world_data()
    # The relationship reaches the tenant 3.5 minutes after the acceptance: the first attempt
    # (3 minutes after it was seen) is denied, the next one, 60 s later with a new token, works.
    data["settings"]["propagation_delay"] = "3m30s"
    emu = make_emulator(data)
    control = Control(emu)
    config = with_service_account(emu, tmp_path)
    config_file = tmp_path / "config.toml"
    config_file.write_text(tomli_w.dumps(config.model.model_dump(exclude_none=True)))
    common = ["--config", str(config_file), "--json", "--region", "NA"]
    runner = CliRunner()

    # The link needs App+User credentials: the signed-in service account asks for it.
    sign_in_service_account(emu, config)
    invited = runner.invoke(
        app, ["customers", "invite", "--service-account", *common], env=SECRET_ENV
    )
    assert invited.exit_code == 0, invited.output
    link = json.loads(invited.stdout)["url"]
    assert "invType=ResellerRelationship" in link and "partnerId=" in link
    as_app_only = runner.invoke(app, ["customers", "invite", *common], env=SECRET_ENV)
    assert as_app_only.exit_code == 3  # no agent signed in: App+User is needed

    onboard = [
        "onboard", "--existing", BAKERY, "--emulator-clock", "--state-dir",
        str(tmp_path / "state"), *common,
    ]  # fmt: skip
    waiting = runner.invoke(app, onboard, env=SECRET_ENV)
    assert waiting.exit_code == 3, waiting.output  # nobody accepted yet: needs a person
    assert "has not accepted the reseller invitation" in waiting.output
    state = json.loads((tmp_path / "state" / f"{BAKERY}.json").read_text())
    assert state["state"] == "awaiting_acceptance"

    control.call("POST", "invitations/accept", {"partner": "partner.com", "customer": BAKERY,
                                                "dap": True})  # fmt: skip
    started = control.call("GET", "clock")
    done = runner.invoke(app, onboard, env=SECRET_ENV)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["state"] == "done"
    attempts = result["attempts"]
    assert [a["ok"] for a in attempts] == [False, True]
    seen = datetime.fromisoformat(result["created_at"])
    # No token before 3 minutes after the acceptance was seen; then one 60 s later. (The world
    # clock also runs on with real time, so a loaded machine adds its seconds: bounded by the
    # next step of the schedule, never below the step itself.)
    first, second = [(datetime.fromisoformat(a["at"]) - seen).total_seconds() for a in attempts]
    assert 180 <= first < 240 and 60 <= second - first < 120, (first, second)
    assert result["users_seen"] > 0
    ended = control.call("GET", "clock")
    assert ended != started  # the world clock moved, nothing slept


def test_a_tenant_accepting_without_dap_is_sent_to_gdap_and_reached_once_the_app_is_consented(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = make_emulator(mixed_world_data())
    control = Control(emu)
    config = config_for(emu, tmp_path)
    config_file = tmp_path / "config.toml"
    config_file.write_text(tomli_w.dumps(config.model.model_dump(exclude_none=True)))
    runner = CliRunner()
    onboard = [
        "onboard", "--existing", BAKERY, "--emulator-clock", "--state-dir",
        str(tmp_path / "state"), "--config", str(config_file), "--json", "--region", "NA",
    ]  # fmt: skip
    # The customer accepts the reseller relationship, without DAP (today's invitations).
    control.call("POST", "invitations/accept", {"partner": "partner.com", "customer": BAKERY,
                                                "dap": False})  # fmt: skip
    moved = control.call("GET", "clock")["offset"]
    stopped = runner.invoke(app, onboard, env=SECRET_ENV)
    # Not 15 minutes of waiting for a pre-consent that never comes: one try, then the next step.
    assert stopped.exit_code == 3, stopped.output
    line = stopped.stderr.strip().splitlines()[-1]
    assert "accepted the reseller invitation without DAP" in line and "code=GdapOnly" in line
    assert "no GDAP relationship names it yet" in line
    assert f"`cspgraph onboard --gdap --domain {BAKERY}`" in line
    assert control.call("GET", "clock")["offset"] == moved  # the world clock never moved: no wait
    state = json.loads((tmp_path / "state" / f"{BAKERY}.json").read_text())
    assert state["state"] == "created" and "without DAP" in state["last_error"]

    # Its Global Administrator consents to the app (the /adminconsent page), which reaches the
    # token service a minute later; the same command then finds the app in and finishes.
    tenant = tenant_of(emu, BAKERY)
    link = admin_consent_link(
        emu.endpoints.authority_host, tenant.id, config.identities["NA"].client_id
    )
    back = consent_as_the_customers_admin(
        emu, link, f"admin@{tenant.initial_domain}", f"Admin-{tenant.id[:8]}"
    )
    assert "admin_consent=True" in back
    emu.advance(61)
    done = runner.invoke(app, onboard, env=SECRET_ENV)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["state"] == "done" and result["users_seen"] > 0
    assert [a["ok"] for a in result["attempts"]] == [False, True]
