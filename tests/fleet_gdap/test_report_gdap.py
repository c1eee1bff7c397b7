"""The report of a mixed fleet: each customer's access mode and nearest GDAP end, in the terminal
tables, the HTML page and `cspgraph report --json`, unknown shown as unknown."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

from rich.console import Console

from csp_emulator.world.worldfile import demo_world_data
from cspgraph.config import Config
from cspgraph.fleet.report import report_data
from cspgraph.fleet.report_html import render_html
from cspgraph.fleet.report_terminal import render_terminal
from cspgraph.fleet.store import Store
from tests.conftest import MakeEmulator
from tests.fleet_gdap.mixed_world import GDAP, dap_domains, mixed_world_data
from tests.fleet_helpers import config_for, run_sync


def synced(config: Config, store: Store) -> dict[str, dict[str, object]]:
    customers = [*dap_domains(mixed_world_data())[:1], *GDAP.values()]
    asyncio.run(run_sync(config, store, customers=customers))
    return {c["domain"]: c for c in report_data(store)["customers"]}


def test_report_json_shows_each_customers_access_mode_and_nearest_gdap_end(
    mixed_config: Config, store: Store
) -> None:
    data = synced(mixed_config, store)
    dap = data[dap_domains(mixed_world_data())[0]]
    assert dap["access_mode"] == "dap"
    assert dap["gdap"] == {"relationship": None, "status": None, "end": None, "days_left": None}
    zava = data[GDAP["zava"]]
    assert zava["access_mode"] == "gdap-app"
    assert zava["gdap"]["status"] == "expiring"
    assert zava["gdap"]["relationship"] == "Fabrikam-GDAP-zavaoutdoors"
    assert 13 <= zava["gdap"]["days_left"] <= 15  # the world's 15 days, less today's part
    assert datetime.fromisoformat(zava["gdap"]["end"])
    assert data[GDAP["woodgrove"]]["gdap"]["status"] == "expired"
    cedar = data[GDAP["cedar"]]
    assert cedar["access_mode"] == "none"
    assert "cspgraph gdap consent" in cedar["access_reason"]
    assert cedar["gdap"]["status"] == "active"


def test_terminal_and_html_reports_show_access_and_gdap_ends(
    mixed_config: Config, store: Store, tmp_path: Path
) -> None:
    data = synced(mixed_config, store)
    zava_end = str(data[GDAP["zava"]]["gdap"]["end"])[:10]
    console = Console(record=True, width=240, color_system=None)
    render_terminal(store, console)
    text = console.export_text()
    assert "Access" in text and "GDAP ends" in text
    for mode in ("dap", "gdap-app", "none"):
        assert f" {mode} " in text
    assert zava_end in text
    assert "(expired)" in text

    page = render_html(store, tmp_path / "fleet.html").read_text(encoding="utf-8")
    assert "<th>Access</th><th>GDAP ends</th>" in page
    assert zava_end in page and "gdap-app" in page


def test_a_customer_synced_without_gdap_knowledge_shows_unknown_not_none(
    mixed_config: Config, store: Store
) -> None:
    from cspgraph.fleet.sync import sync_fleet

    dap = dap_domains(mixed_world_data())[0]
    asyncio.run(sync_fleet(mixed_config, store, customers=[dap], detect_access=False))
    [row] = report_data(store)["customers"]
    assert row["access_mode"] is None and row["gdap"] is None
    console = Console(record=True, width=240, color_system=None)
    render_terminal(store, console)
    assert "unknown" in console.export_text()


def test_needs_action_gives_each_gdap_customer_its_own_next_step(
    mixed_config: Config, store: Store
) -> None:
    synced(mixed_config, store)
    actions = report_data(store)["needs_action"]
    text = json.dumps(actions)
    # Cedar (consent missing) and Skyline (approval pending) share Entra's AADSTS700016 but not
    # their fix: neither is folded into one region-wide "the app is unknown" item.
    cedar = [a for a in actions if GDAP["cedar"] in a["customers"]]
    skyline = [a for a in actions if GDAP["skyline"] in a["customers"]]
    assert cedar and skyline and cedar != skyline
    assert "cspgraph gdap consent --customer" in json.dumps(cedar)
    assert "awaits the customer's approval" in json.dumps(skyline)
    assert "Entra does not know the app in these tenants" not in text


def test_the_demo_world_as_make_demo_serves_it_shows_gdap_not_unknown(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    # The demo world itself, not the mixed fleet's additions: its apps may read relationships.
    emu = make_emulator(demo_world_data(2, seed=11))
    with Store.open(f"sqlite:///{tmp_path / 'demo.db'}") as store:
        summary = asyncio.run(
            run_sync(config_for(emu, tmp_path), store, customers=["customer.com", GDAP["zava"]])
        )
        assert summary.gdap_unknown == {}
        data = {c["domain"]: c for c in report_data(store)["customers"]}
    assert data[GDAP["zava"]]["gdap"]["status"] == "expiring"
    assert data["customer.com"]["access_mode"] == "dap"
