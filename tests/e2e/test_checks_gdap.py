"""The GDAP checks over a store synced from the mixed DAP/GDAP world (tests/fleet_gdap's): a
relationship ending soon, one ended, an approval waiting too long, each found where the world has
it and nowhere else; the emulator's clock moving relationships from one to the next; and GDAP
unknown (the app may not read relationships) said as unknown, never as "nothing found"."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from csp_emulator.server import Emulator
from cspgraph.fleet.checks import CheckResults, Finding, Severity, run_checks
from cspgraph.fleet.checks.gdap import NOT_READ
from cspgraph.fleet.store import Store
from tests.conftest import MakeEmulator
from tests.fleet_gdap.mixed_world import GDAP, dap_domains, mixed_world_data
from tests.fleet_helpers import Control, config_for, run_sync

GDAP_CHECKS = ("gdap.expiring", "gdap.ended", "gdap.approval_waiting")
SYNCED = ("northwind", "lakeshore", "zava", "woodgrove", "skyline")


def world_now(emu: Emulator) -> datetime:
    return datetime.fromtimestamp(Control(emu).call("GET", "clock")["epoch"], UTC)


def gdap_findings(results: CheckResults) -> dict[tuple[str, str], Finding]:
    """(check, customer's domain) -> the finding, for the GDAP checks."""
    domain = {t: c.domain for t, c in results.customers.items()}
    return {
        (f.check_id, domain[f.tenant_id or ""] or ""): f
        for f in results.findings
        if f.check_id in GDAP_CHECKS
    }


def sync_mixed(emu: Emulator, tmp_path: Path, store: Store, extra: list[str]) -> None:
    config = config_for(emu, tmp_path, regions=("NA",))
    domains = [GDAP[k] for k in SYNCED] + extra
    asyncio.run(run_sync(config, store, customers=domains))


def test_gdap_findings_where_the_world_has_them_and_the_clock_moves_them(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    data = mixed_world_data(1)
    emu = make_emulator(data)
    dap = dap_domains(data)[0]
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as store:
        sync_mixed(emu, tmp_path, store, [dap])
        now = world_now(emu)
        found = gdap_findings(run_checks(store, now=now))
        # Zava's relationship ends in 15 days; Woodgrove's has expired (its consent still lets
        # the app sync it); Skyline's has waited 2 days for approval, not yet too long.
        assert set(found) == {("gdap.expiring", GDAP["zava"]), ("gdap.ended", GDAP["woodgrove"])}
        zava = found["gdap.expiring", GDAP["zava"]]
        assert zava.severity is Severity.MEDIUM
        assert "'Fabrikam-GDAP-zavaoutdoors' ends on" in zava.summary
        assert "in 14 days" in zava.summary  # 15 days less the seconds since the world began
        assert [o.name for o in zava.objects] == ["Fabrikam-GDAP-zavaoutdoors"]
        woodgrove = found["gdap.ended", GDAP["woodgrove"]]
        assert woodgrove.severity is Severity.MEDIUM
        assert "the app still syncs the customer" in woodgrove.summary

        # The checks' clock alone: nine days on, Zava's end is within a week (high); sixteen
        # days on it has passed, judged from the stored end without another sync.
        week = gdap_findings(run_checks(store, now=now + timedelta(days=9)))
        assert week["gdap.expiring", GDAP["zava"]].severity is Severity.HIGH
        later = gdap_findings(run_checks(store, now=now + timedelta(days=16)))
        assert ("gdap.expiring", GDAP["zava"]) not in later
        assert "expired on" in later["gdap.ended", GDAP["zava"]].summary
        assert ("gdap.approval_waiting", GDAP["skyline"]) in later

        # Northwind's relationship does not auto-extend and ends 610 days on; Lakeshore's
        # auto-extends and ends 700 days on: near its end only Northwind's is found.
        near_end = gdap_findings(run_checks(store, now=now + timedelta(days=690)))
        assert ("gdap.ended", GDAP["northwind"]) in near_end
        assert not [k for k in near_end if k[1] == GDAP["lakeshore"]]

        # The emulator's clock moves 16 days and the sync reads what Graph now says.
        Control(emu).call("POST", "clock", {"by": "16d"})
        sync_mixed(emu, tmp_path, store, [dap])
        moved = gdap_findings(run_checks(store, now=world_now(emu)))
    assert set(moved) == {
        ("gdap.ended", GDAP["zava"]),
        ("gdap.ended", GDAP["woodgrove"]),
        ("gdap.approval_waiting", GDAP["skyline"]),
    }
    skyline = moved["gdap.approval_waiting", GDAP["skyline"]]
    assert "has waited 18 days for the customer's approval" in skyline.summary


def test_gdap_the_app_may_not_read_is_unknown_at_every_customer_never_fine(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = make_emulator(mixed_world_data(1, read_gdap=False))
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as store:
        sync_mixed(emu, tmp_path, store, [])
        results = run_checks(store, now=world_now(emu) + timedelta(days=16))
    assert gdap_findings(results) == {}
    unknown = {(u.check_id, u.tenant_id): u.reason for u in results.unknowns}
    for check in GDAP_CHECKS:
        for tenant, customer in results.customers.items():
            if customer.domain in (GDAP["zava"], GDAP["woodgrove"], GDAP["northwind"]):
                assert unknown[check, tenant] == NOT_READ
