"""gdap-delegated: customers the app cannot reach, synced through a partner service account's
delegated tokens (the Secure Application Model), within the roles its groups hold there; its
sign-in kept encrypted at rest."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import select

from csp_emulator.server import Emulator
from cspgraph.config import Config
from cspgraph.fleet import schema
from cspgraph.fleet.store import Store
from cspgraph.identity import TokenProvider
from cspgraph.identity.service_account import ServiceAccountTokens, key_path_for
from tests.client.test_agent_login import fill_sign_in
from tests.conftest import MakeEmulator
from tests.fleet_gdap.mixed_world import (
    DELEGATED,
    GDAP,
    SERVICE_ACCOUNT,
    dap_domains,
    mixed_world_data,
)
from tests.fleet_helpers import config_for, run_sync


def with_service_account(emu: Emulator, tmp_path: Path) -> Config:
    return config_for(emu, tmp_path, service_account_cache=str(tmp_path / "sa" / "tokens.bin"))


def sign_in_service_account(emu: Emulator, config: Config) -> None:
    path = config.service_account_cache_path
    assert path is not None
    provider = TokenProvider(config, workers=1)
    service = ServiceAccountTokens(provider, path)
    try:
        with service.begin_sign_in("partner.com") as pending:
            landed = fill_sign_in(
                emu, pending.auth_url, SERVICE_ACCOUNT["upn"], SERVICE_ACCOUNT["password"]
            )
            assert landed.status_code == 200
            pending.wait(timeout=30)
    finally:
        service.close()
        provider.close()


def mixed_fleet_signed_in(
    make_emulator: MakeEmulator, tmp_path: Path
) -> tuple[dict[str, Any], Config]:
    """The mixed fleet's world data, served, and a configuration whose service account has
    signed in."""
    data = mixed_world_data()
    emu = make_emulator(data)
    config = with_service_account(emu, tmp_path)
    sign_in_service_account(emu, config)
    return data, config


def by_domain(summary: Any) -> dict[str, Any]:
    return {t.customer.reference: t for t in summary.tenants}


def test_the_service_accounts_sign_in_is_encrypted_at_rest_and_private(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = make_emulator(mixed_world_data())
    config = with_service_account(emu, tmp_path)
    sign_in_service_account(emu, config)
    path = config.service_account_cache_path
    assert path is not None
    sealed = path.read_bytes()
    for clear in (b"refresh_token", b"secret", b"gdap-admin", b"RefreshToken"):
        assert clear not in sealed  # neither the token nor who it is, in the clear
    for private in (path, key_path_for(path)):
        assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    # The key alone reads it back: another process finds the account signed in.
    provider = TokenProvider(config, workers=1)
    service = ServiceAccountTokens(provider, path)
    try:
        assert [a.username for a in service.accounts()] == [SERVICE_ACCOUNT["upn"]]
    finally:
        service.close()
        provider.close()


def test_a_mixed_fleet_with_dap_gdap_app_gdap_delegated_pending_and_expired_in_one_run(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    data, config = mixed_fleet_signed_in(make_emulator, tmp_path)
    dap = dap_domains(data)[:2]
    named = [*dap, GDAP["northwind"], GDAP["skyline"], *DELEGATED.values()]
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as store:
        summary = asyncio.run(run_sync(config, store, customers=named))
        got = by_domain(summary)
        assert {got[d].access.mode.value for d in dap} == {"dap"}
        assert got[GDAP["northwind"]].access.mode.value == "gdap-app"
        # Pending: no consent, and the service account holds no role there yet.
        skyline = got[GDAP["skyline"]]
        assert (skyline.status.value, skyline.access.mode.value) == ("needs_person", "none")
        assert "awaits the customer's approval" in skyline.reason

        fjord = got[DELEGATED["fjord"]]
        assert (fjord.status.value, fjord.access.mode.value) == ("ok", "gdap-delegated")
        assert fjord.received["users"] > 0
        # Its groups give Directory Readers here, not Intune Administrator: the managed
        # devices are skipped with the role they need, not failed or shown as 0.
        assert fjord.modes["managedDevices"].startswith("skipped: needs the role Intune")
        gale = got[DELEGATED["gale"]]
        assert (gale.status.value, gale.access.mode.value) == ("needs_person", "none")
        assert "Fabrikam-GDAP-gale is expired (ended" in gale.reason
        assert summary.access_modes() == {"dap": 2, "gdap-app": 1, "gdap-delegated": 1, "none": 2}

        users = schema.users.c
        with store.reading() as conn:
            stored = conn.execute(select(users.id).where(users.tenant_id == fjord.tenant_id)).all()
        assert len(stored) == fjord.received["users"]


def test_call_and_service_account_commands_reach_a_gdap_delegated_customer(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    import json

    import tomli_w
    from typer.testing import CliRunner

    from cspgraph.cli.main import app
    from tests.fleet_helpers import SECRET_ENV

    emu = make_emulator(mixed_world_data())
    config = with_service_account(emu, tmp_path)
    config_file = tmp_path / "config.toml"
    config_file.write_text(tomli_w.dumps(config.model.model_dump(exclude_none=True)))
    common = ["--config", str(config_file)]
    runner = CliRunner()

    before = runner.invoke(app, ["service-account", "status", "--json", *common], env=SECRET_ENV)
    assert before.exit_code == 3  # nobody signed in yet: needs a person
    sign_in_service_account(emu, config)
    after = runner.invoke(app, ["service-account", "status", "--json", *common], env=SECRET_ENV)
    assert after.exit_code == 0
    assert json.loads(after.stdout)["accounts"] == [
        {"username": SERVICE_ACCOUNT["upn"], "region": "NA"}
    ]

    fjord = DELEGATED["fjord"]
    as_app = runner.invoke(
        app,
        ["call", "GET", "/users", "--customer", fjord, "--top", "1", "--app", *common],
        env=SECRET_ENV,
    )
    assert as_app.exit_code != 0  # the app's consent holds no application permissions
    # Without --app or --service-account, and no sync recorded (no store): found out.
    found = runner.invoke(
        app,
        ["call", "GET", "/users", "--customer", fjord, "--top", "1", "--db",
         str(tmp_path / "never-synced.db"), *common],
        env=SECRET_ENV,
    )  # fmt: skip
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)["value"]
    assert "calling as the service account: the app's own token reaches nothing" in found.stderr
    assert not (tmp_path / "never-synced.db").exists()  # looked for, not created
    as_account = runner.invoke(
        app,
        ["call", "GET", "/users", "--customer", fjord, "--top", "1", "--service-account", *common],
        env=SECRET_ENV,
    )
    assert as_account.exit_code == 0, as_account.output
    assert json.loads(as_account.stdout)["value"]
    assert "refresh" not in as_account.output.lower()
    both = runner.invoke(
        app,
        ["call", "GET", "/users", "--customer", fjord, "--service-account", "--agent", *common],
        env=SECRET_ENV,
    )
    assert both.exit_code == 2
    assert "--agent and --service-account: choose one" in both.stderr


def test_call_follows_the_access_mode_the_last_sync_recorded(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    import json

    import tomli_w
    from typer.testing import CliRunner

    from cspgraph.cli.main import app
    from tests.fleet_helpers import SECRET_ENV

    data, config = mixed_fleet_signed_in(make_emulator, tmp_path)
    fjord, dap = DELEGATED["fjord"], dap_domains(data)[0]
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    with Store.open(db) as store:
        summary = asyncio.run(run_sync(config, store, customers=[dap, fjord]))
    assert {t.access.mode.value for t in summary.tenants} == {"dap", "gdap-delegated"}
    config_file = tmp_path / "config.toml"
    config_file.write_text(tomli_w.dumps(config.model.model_dump(exclude_none=True)))
    runner = CliRunner()

    def call(customer: str, *more: str) -> Any:
        args = ["call", "GET", "/users", "--customer", customer, "--top", "1", "--db", db]
        return runner.invoke(app, [*args, *more, "--config", str(config_file)], env=SECRET_ENV)

    delegated = call(fjord)
    assert delegated.exit_code == 0, delegated.output
    assert json.loads(delegated.stdout)["value"]
    assert "access mode gdap-delegated, recorded by the last sync" in delegated.stderr
    by_app = call(dap)  # recorded dap: the app, nothing said
    assert by_app.exit_code == 0, by_app.output
    assert "service account" not in by_app.stderr
    overridden = call(fjord, "--app")  # the override: the app, whose token carries no roles there
    assert overridden.exit_code != 0
    assert "service account" not in overridden.stderr


def test_the_service_account_signs_in_and_out_through_the_command(
    make_emulator: MakeEmulator, tmp_path: Path, monkeypatch: Any
) -> None:
    import json
    import threading

    import tomli_w
    from typer.testing import CliRunner

    from cspgraph.cli.main import app
    from tests.client.partner_helpers import sign_in_browser
    from tests.fleet_helpers import SECRET_ENV

    emu = make_emulator(mixed_world_data())
    config = with_service_account(emu, tmp_path)
    config_file = tmp_path / "config.toml"
    config_file.write_text(tomli_w.dumps(config.model.model_dump(exclude_none=True)))
    fill = sign_in_browser(emu, SERVICE_ACCOUNT["upn"], SERVICE_ACCOUNT["password"])

    def open_browser(url: str) -> bool:
        threading.Thread(target=fill, args=(url,), daemon=True).start()
        return True

    monkeypatch.setattr("webbrowser.open", open_browser)
    common = ["--config", str(config_file), "--json"]
    runner = CliRunner()
    signed = runner.invoke(
        app,
        ["service-account", "sign-in", "--at", "partner.com", "--timeout", "30", *common],
        env=SECRET_ENV,
    )
    assert signed.exit_code == 0, signed.output
    assert json.loads(signed.stdout)["username"] == SERVICE_ACCOUNT["upn"]
    assert "refresh" not in signed.output.lower()
    out = runner.invoke(app, ["service-account", "sign-out", *common], env=SECRET_ENV)
    assert out.exit_code == 0 and json.loads(out.stdout)["signed_out"] == 1
    status = runner.invoke(app, ["service-account", "status", *common], env=SECRET_ENV)
    assert status.exit_code == 3 and json.loads(status.stdout)["accounts"] == []
