"""The fleet's customer list from Partner Center, from the active GDAP relationships, or both,
with the gaps between the two reported by name."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import tomli_w
import typer
from typer.testing import CliRunner

from cspgraph.config import Config
from cspgraph.fleet.store import Store
from tests.conftest import MakeEmulator
from tests.fleet_gdap.mixed_world import (
    DELEGATED,
    GDAP,
    MLT_NAME,
    dap_domains,
    mixed_world_data,
)
from tests.fleet_helpers import SECRET_ENV, Control, config_for, run_sync


def names(entries: list[dict[str, Any]]) -> set[str]:
    return {e["name"] for e in entries}


def world_ids(control: Control) -> dict[str, str]:
    return {t["domain"]: t["id"] for t in control.customers()}


def test_gdap_lists_the_customers_with_an_active_relationship_only(
    mixed_config: Config, store: Store, control: Control
) -> None:
    summary = asyncio.run(run_sync(mixed_config, store, customer_source="gdap"))
    ids = world_ids(control)
    synced = {t.tenant_id for t in summary.tenants}
    expected = {ids[GDAP[k]] for k in ("northwind", "lakeshore", "zava", "cedar")}
    expected.add(ids[DELEGATED["fjord"]])
    assert synced == expected  # active or expiring; not pending, expired or none
    assert summary.gone == []  # Partner Center was not asked: nobody is "gone"


def test_both_sources_sync_the_union_and_report_the_gaps_by_name(
    mixed_config: Config, store: Store, control: Control
) -> None:
    summary = asyncio.run(run_sync(mixed_config, store, customer_source="both"))
    ids = world_ids(control)
    dap = set(dap_domains(mixed_world_data()))
    synced = {t.tenant_id for t in summary.tenants}
    assert ids[GDAP["cedar"]] in synced  # a GDAP customer Partner Center does not list
    assert ids[GDAP["skyline"]] not in synced and ids[GDAP["harborview"]] not in synced
    gaps = summary.listing_gaps
    assert gaps is not None and gaps["complete"] is True
    assert names(gaps["only_gdap"]) == {"Cedar Logistics"}
    only_pc = {e["tenant_id"] for e in gaps["only_partner_center"]}
    # Reseller customers without a GDAP relationship in effect: the DAP ones, and the one
    # whose relationship expired.
    assert ids[GDAP["woodgrove"]] in only_pc
    assert ids[DELEGATED["gale"]] in only_pc  # its relationship expired
    assert {ids[d] for d in dap} <= only_pc
    assert not only_pc & {ids[GDAP[k]] for k in ("northwind", "lakeshore", "zava")}
    assert all("DAP" in e["why"] for e in gaps["only_partner_center"])
    assert summary.gone == []  # the GDAP-only customer is not "gone" from Partner Center


def test_mlt_relationships_are_left_out_when_asked(
    make_emulator: MakeEmulator, tmp_path: Path, store: Store
) -> None:
    emu = make_emulator(mixed_world_data(mlt=True))
    config = config_for(emu, tmp_path)
    control = Control(emu)
    mlt_customer = next(
        r["customer"]["id"] if isinstance(r.get("customer"), dict) else r.get("customer_id")
        for r in control.call("GET", "gdap")["value"]
        if r.get("display_name", r.get("displayName")) == MLT_NAME
    )
    with_mlt = asyncio.run(run_sync(config, store, customer_source="both"))
    assert mlt_customer not in {
        e["tenant_id"] for e in with_mlt.listing_gaps["only_partner_center"]
    }
    without = asyncio.run(run_sync(config, store, customer_source="both", exclude_mlt=True))
    assert mlt_customer in {e["tenant_id"] for e in without.listing_gaps["only_partner_center"]}


def test_the_sync_command_takes_the_source_and_refuses_an_unknown_one(
    mixed_config: Config, tmp_path: Path
) -> None:
    from cspgraph.cli import sync_cmd

    app = typer.Typer()
    app.command("sync")(sync_cmd.sync)

    @app.callback()
    def main() -> None:
        """cspgraph"""

    config_file = tmp_path / "config.toml"
    config_file.write_text(tomli_w.dumps(mixed_config.model.model_dump(exclude_none=True)))
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    args = ["sync", "--config", str(config_file), "--db", db, "--json", "--no-progress"]
    bad = CliRunner().invoke(app, [*args, "--customer-source", "lighthouse"], env=SECRET_ENV)
    assert bad.exit_code == 2 and "--customer-source" in bad.output
    run = CliRunner().invoke(
        app, [*args, "--customer-source", "both", "--exclude-mlt"], env=SECRET_ENV
    )
    assert run.exit_code == 1  # the customers without consent or approval need a person
    out = json.loads(run.stdout)
    assert names(out["listing_gaps"]["only_gdap"]) == {"Cedar Logistics"}
    # Northwind, Lakeshore, Zava, and Woodgrove (listed by Partner Center, consent kept).
    assert out["access_modes"]["gdap-app"] == 4
    # Cedar (listed by GDAP only, no consent); Fjord and Gale (consent without application
    # permissions, and no service account configured here).
    assert out["access_modes"]["none"] == 3
