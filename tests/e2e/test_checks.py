"""The checks over a store synced from a world with every finding planted in it (and a customer
with none): each check finds what is there, nothing where nothing is, and says "unknown" where
the store cannot tell. Then `cspgraph check` as cron and CI use it."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from csp_emulator import wellknown
from csp_emulator.server import Emulator
from csp_emulator.world.objects import user_json
from csp_emulator.world.worldfile import add_role_member
from cspgraph.cli.main import app
from cspgraph.config import config_from_data
from cspgraph.fleet.checks import CHECKS, CheckResults, Severity, run_checks
from cspgraph.fleet.checks.gdap import NOT_READ as GDAP_NOT_READ
from cspgraph.fleet.partner_apps import NO_READ
from cspgraph.fleet.store import Store
from tests.e2e.conftest import Planted
from tests.e2e.fleet_world import CLEAN, NAMES, NO_ADMIN, NO_INTUNE, RISKY
from tests.fleet_helpers import SECRET_ENV, Control, config_for, fleet_world, run_sync

CLEAN_CO, RISKY_LTD = NAMES[CLEAN], NAMES[RISKY]


@pytest.fixture
def results(planted: Planted) -> CheckResults:
    with Store.open(planted.url) as store:
        return run_checks(store)


def found(results: CheckResults) -> set[tuple[str, str]]:
    return {(f.check_id, results.name_of(f.tenant_id)) for f in results.findings}


def finding(results: CheckResults, check: str, customer: str) -> Any:
    [one] = [
        f for f in results.findings
        if f.check_id == check and results.name_of(f.tenant_id) == customer
    ]  # fmt: skip
    return one


def test_each_check_finds_what_is_planted_and_nothing_at_the_clean_customer(
    results: CheckResults,
) -> None:
    assert found(results) == {
        ("admins.too_many", RISKY_LTD),
        ("admins.disabled", RISKY_LTD),
        ("licences.unused", RISKY_LTD),
        ("licences.disabled_users", RISKY_LTD),
        ("devices.stale", RISKY_LTD),
        ("devices.noncompliant", RISKY_LTD),
        ("devices.unencrypted", RISKY_LTD),
        ("devices.os_unsupported", RISKY_LTD),
        ("users.guests", RISKY_LTD),
        ("admins.none", NAMES[NO_ADMIN]),
        ("partner.credential_expiring", "Fleet"),
    }
    assert not [f for f in results.findings if results.name_of(f.tenant_id) == CLEAN_CO]
    # Worst first.
    assert [f.severity for f in results.findings] == sorted(
        (f.severity for f in results.findings), reverse=True
    )


def test_findings_name_the_objects_they_found(results: CheckResults) -> None:
    too_many = finding(results, "admins.too_many", RISKY_LTD)
    assert {o.name for o in too_many.objects} == {
        *(f"ga{i}@{RISKY}" for i in range(4)),
        "admin@risky.onmicrosoft.com",
    }
    assert "5 Global Administrators" in too_many.summary
    disabled = finding(results, "admins.disabled", RISKY_LTD)
    assert [o.name for o in disabled.objects] == [f"oldadmin@{RISKY}"]
    assert finding(results, "licences.disabled_users", RISKY_LTD).objects[0].name == (
        f"leaver@{RISKY}"
    )
    unused = finding(results, "licences.unused", RISKY_LTD)
    assert [(o.name, o.detail) for o in unused.objects] == [("SPB", "15 of 20 unused")]
    assert [o.name for o in finding(results, "devices.stale", RISKY_LTD).objects] == ["RISKY-STALE"]
    assert [o.name for o in finding(results, "devices.noncompliant", RISKY_LTD).objects] == [
        "RISKY-NONCOMPLIANT"
    ]
    assert [o.name for o in finding(results, "devices.unencrypted", RISKY_LTD).objects] == [
        "RISKY-UNENCRYPTED"
    ]
    old = finding(results, "devices.os_unsupported", RISKY_LTD)
    assert old.severity is Severity.HIGH
    assert {o.name: o.detail.split(":")[0] for o in old.objects} == {
        "RISKY-WIN10": "Windows 10 22H2",
        "RISKY-IOS16": "iOS 16",
        "RISKY-ANDROID11": "Android 11",
    }
    assert len(finding(results, "users.guests", RISKY_LTD).objects) == 2
    credential = finding(results, "partner.credential_expiring", "Fleet")
    assert credential.subject == "NA"
    assert re.search(r"the partner app's secret ends on \S+, in (9|10) days", credential.summary)
    assert "cspgraph setup --region NA" in credential.fix


def test_what_the_store_cannot_tell_is_unknown_not_fine(results: CheckResults) -> None:
    unknown = {(u.check_id, results.name_of(u.tenant_id)): u.reason for u in results.unknowns}
    for check in ("devices.stale", "devices.noncompliant", "devices.unencrypted"):
        assert unknown[check, NAMES[NO_INTUNE]] == "the tenant has no Intune licence"
    assert unknown["partner.credential_expiring", "Fleet"] == f"region EU's app (secret): {NO_READ}"
    # The planted world's app may not read GDAP relationships: unknown at every customer, the
    # clean one too, and that is all the clean one leaves unknown.
    clean = {
        (u.check_id, u.reason) for u in results.unknowns if results.name_of(u.tenant_id) == CLEAN_CO
    }
    assert clean == {
        (c, GDAP_NOT_READ) for c in ("gdap.expiring", "gdap.ended", "gdap.approval_waiting")
    }


def test_the_clock_moves_findings_stale_data_and_devices(planted: Planted) -> None:
    with Store.open(planted.url) as store:
        later = run_checks(store).evaluated_at + timedelta(days=40)
        results = run_checks(store, now=later)
    # A week without a sync: every customer's data is stale, and every device went silent.
    assert {
        results.name_of(f.tenant_id) for f in results.findings if f.check_id == "sync.stale"
    } == set(NAMES.values())
    assert ("devices.stale", CLEAN_CO) in found(results)
    assert "secret ended on" in finding(results, "partner.credential_expiring", "Fleet").summary


def test_every_check_is_documented() -> None:
    ids = [check.id for check in CHECKS]
    assert len(ids) == len(set(ids))
    docs = (Path(__file__).parents[2] / "docs" / "checks.md").read_text(encoding="utf-8")
    for check in CHECKS:
        assert check.why and check.fix and check.title
        assert f"`{check.id}`" in docs, check.id


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_check_command_for_cron_and_ci(planted: Planted) -> None:
    db = planted.url
    every = invoke("check", "--db", db, "--json")
    assert every.exit_code == 0, every.output  # without --fail-on: findings are not failure
    data = json.loads(every.stdout)
    assert data["counts"]["high"] >= 2 and len(data["findings"]) == 11
    assert {f["customer"] for f in data["findings"]} >= {RISKY_LTD, NAMES[NO_ADMIN]}
    assert invoke("check", "--db", db, "--json", "--fail-on", "high").exit_code == 3
    clean = invoke("check", "--db", db, "--json", "--customer", CLEAN_CO, "--fail-on", "low")
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["findings"] == []
    risky = invoke("check", "--db", db, "--json", "--customer", "risky", "--fail-on", "medium")
    assert risky.exit_code == 3
    assert {f["customer"] for f in json.loads(risky.stdout)["findings"]} == {RISKY_LTD}
    nobody = invoke("check", "--db", db, "--customer", "nobody-here")
    assert nobody.exit_code == 2 and "no such customer" in nobody.stderr
    bad = invoke("check", "--db", db, "--fail-on", "extreme")
    assert bad.exit_code == 2 and "expected one of high, medium, low, info" in bad.stderr
    listed = invoke("check", "--list", "--json")
    assert listed.exit_code == 0
    assert {c["id"] for c in json.loads(listed.stdout)["checks"]} == {c.id for c in CHECKS}
    assert "gdap.assignment_error" in json.loads(listed.stdout)["not_yet"]


async def test_a_region_wide_bad_secret_is_one_cause_and_a_new_admin_is_news(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(fleet_world(8, sizes={"users": 6, "groups": 1, "devices": 2}))
    control = Control(emu)
    customers = control.customers()
    eu = [t["domain"] for t in customers if t["region"] == "EU"]
    na = [t for t in customers if t["region"] == "NA"]
    assert len(eu) >= 2 and na
    config = config_for(emu, tmp_path)
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as store:
        assert (await run_sync(config, store)).ok
        wrong = {**SECRET_ENV, "CSPGRAPH_SECRET_EU": "not-the-secret"}
        broken = config_from_data(config.model.model_dump(exclude_none=True), env=wrong)
        target = emu.world.tenants[na[0]["id"]]

        def new_admin() -> None:
            admin = target.add("users", user_json(target, f"intruder@{target.default_domain}"))
            add_role_member(target, wellknown.ROLE_GLOBAL_ADMIN, admin["id"])

        emu.call(new_admin)
        await run_sync(broken, store, customers=[t["domain"] for t in customers])
        results = run_checks(store)
    failing = [f for f in results.findings if f.check_id == "sync.failing"]
    assert {results.name_of(f.tenant_id) for f in failing} == {
        t["display_name"] for t in customers if t["region"] == "EU"
    }
    assert len({f.group for f in failing}) == 1  # one cause: the EU app's secret
    assert all(f.severity is Severity.HIGH and "7000215" in f.summary for f in failing)
    assert all("client secret" in f.fix for f in failing)
    news = finding(results, "changes.new_global_admin", na[0]["display_name"])
    assert news.severity is Severity.HIGH
    assert [o.name for o in news.objects] == [f"intruder@{target.default_domain}"]
    assert ("global_admin", "added") in {(c.kind, c.change) for c in results.changes}


async def test_a_failing_sync_grows_more_severe_run_after_run(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(fleet_world(2))
    control = Control(emu)
    target = next(t for t in control.customers() if t["region"] == "NA")
    control.call("DELETE", "relationships", {"partner": "partner.com", "customer": target["id"]})
    config = config_for(emu, tmp_path)
    severities = []
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as store:
        for _ in range(3):
            await run_sync(config, store, customers=[target["domain"]])
            # Named, never synced: the store knows it by its domain only.
            severities.append(finding(run_checks(store), "sync.failing", target["domain"]).severity)
        [gone] = await asyncio.gather(run_sync(config, store))
        results = run_checks(store)
    # Propagating: patience at first, then somebody should look.
    assert severities == [Severity.LOW, Severity.LOW, Severity.HIGH]
    assert gone.gone == [target["id"]]
    assert ("customers.gone", target["domain"]) in found(results)
    assert ("sync.failing", target["domain"]) not in found(results)  # gone: not chased
