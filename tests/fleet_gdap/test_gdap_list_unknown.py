"""A fleet listed from GDAP relationships the app may not read: the run fails as for an
unreadable Partner Center list, and the gaps say "unknown", never "no relationship"."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import tomli_w
from typer.testing import CliRunner

from cspgraph.cli.main import app
from cspgraph.config import Config
from cspgraph.fleet.customer_sources import listing_gaps
from cspgraph.fleet.customers import CustomerRef
from cspgraph.fleet.store import Store
from tests.conftest import MakeEmulator
from tests.fleet_gdap.mixed_world import GDAP, mixed_world_data
from tests.fleet_helpers import SECRET_ENV, Control, config_for, run_sync


def unreadable_config(make_emulator: MakeEmulator, tmp_path: Path) -> tuple[Config, Control]:
    emu = make_emulator(mixed_world_data(read_gdap=False))
    return config_for(emu, tmp_path), Control(emu)


def test_a_gdap_listed_sync_whose_relationships_are_unreadable_fails_and_says_why(
    make_emulator: MakeEmulator, tmp_path: Path, store: Store
) -> None:
    config, _ = unreadable_config(make_emulator, tmp_path)
    summary = asyncio.run(run_sync(config, store, customer_source="gdap"))
    assert summary.tenants == []
    assert not summary.ok  # not "0 customers, all well"
    assert set(summary.listing_errors) == {"NA", "EU"}
    for why in summary.listing_errors.values():
        assert why.startswith("GDAP relationships unknown:")
        assert "DelegatedAdminRelationship.Read.All" in why


def test_both_sources_with_unreadable_relationships_put_nobody_in_the_no_gdap_gap(
    make_emulator: MakeEmulator, tmp_path: Path, store: Store
) -> None:
    config, control = unreadable_config(make_emulator, tmp_path)
    summary = asyncio.run(run_sync(config, store, customer_source="both"))
    assert not summary.ok and set(summary.listing_errors) == {"NA", "EU"}
    gaps = summary.listing_gaps
    assert gaps is not None and gaps["complete"] is False
    assert gaps["only_partner_center"] == []  # nobody claimed to have no relationship
    unknown = {e["tenant_id"]: e for e in gaps["unknown"]}
    northwind = next(t["id"] for t in control.customers() if t["domain"] == GDAP["northwind"])
    assert northwind in unknown  # onboarded through GDAP, whose list could not be read
    assert "unknown" in unknown[northwind]["why"] and "region NA" in unknown[northwind]["why"]
    assert {t.tenant_id for t in summary.tenants} >= set(unknown)  # still synced


def test_a_region_whose_relationships_were_read_still_reports_its_gaps() -> None:
    gaps = listing_gaps(
        {"t-na": "Only PC in NA", "t-eu": "Only PC in EU"},
        [CustomerRef("t-gdap-eu", tenant_id="t-gdap-eu", display_name="GDAP EU", region="EU"),
         CustomerRef("t-gdap-na", tenant_id="t-gdap-na", display_name="GDAP NA", region="NA")],
        complete=False,
        regions={"t-na": "NA", "t-eu": "EU"},
        gdap_unknown=["EU"],
        partner_center_unknown=["NA"],
    )  # fmt: skip
    assert gaps.only_partner_center == {"t-na": "Only PC in NA"}
    assert gaps.only_gdap == {"t-gdap-eu": "GDAP EU"}
    assert set(gaps.unknown) == {"t-eu", "t-gdap-na"}
    assert "GDAP relationships of region EU" in gaps.unknown["t-eu"][1]
    assert "Partner Center's customers of region NA" in gaps.unknown["t-gdap-na"][1]


def test_the_sync_command_exits_1_when_the_gdap_list_is_unreadable(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    config, _ = unreadable_config(make_emulator, tmp_path)
    config_file = tmp_path / "config.toml"
    config_file.write_text(tomli_w.dumps(config.model.model_dump(exclude_none=True)))
    run = CliRunner().invoke(
        app,
        ["sync", "--config", str(config_file), "--db", f"sqlite:///{tmp_path / 'cli.db'}",
         "--json", "--no-progress", "--customer-source", "gdap"],
        env=SECRET_ENV,
    )  # fmt: skip
    assert run.exit_code == 1
    out = json.loads(run.stdout)
    assert out["ok"] is False and out["totals"]["customers"] == 0
    assert set(out["listing_errors"]) == {"NA", "EU"}
