"""`cspgraph gdap roles|invite|status` against the emulator: a relationship created and locked
for approval with its link, idempotent by name; refusals before any request; status per customer
read on the world clock, with exit 3 when something needs a person."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from csp_emulator.server import Emulator
from cspgraph.gdap.invite import InviteError, InviteRequest, invite
from cspgraph.gdap.roles import (
    CLOUD_APPLICATION_ADMINISTRATOR,
    DIRECTORY_READERS,
    GLOBAL_ADMINISTRATOR,
    USER_ADMINISTRATOR,
    resolve_roles,
)
from cspgraph.gdap.session import GdapSession
from tests.emulator.gdap_world import ACTIVE_NAME, GDAP_CUSTOMER
from tests.emulator.graph_tokens import control_client, tenant_of
from tests.gdap.conftest import (
    FRESH_CUSTOMER,
    MakeEmulator,
    gdap_cli,
    gdap_world_for_ops,
    signed_in,
)

DAY = 86400


def world_relationships(emu: Emulator) -> list[dict[str, Any]]:
    with control_client(emu) as control:
        answer = control.get("/gdap")
        answer.raise_for_status()
        value: list[dict[str, Any]] = answer.json()["value"]
    return value


def named(emu: Emulator, name: str) -> list[dict[str, Any]]:
    return [r for r in world_relationships(emu) if r["display_name"] == name]


async def test_invite_creates_the_relationship_locks_it_and_gives_the_approval_link(
    emu: Emulator, gdap: GdapSession
) -> None:
    customer = tenant_of(emu, GDAP_CUSTOMER).id
    request = InviteRequest(
        "Contoso-cspgraph", (DIRECTORY_READERS, USER_ADMINISTRATOR), customer_id=customer
    )
    made = await invite(gdap.api, request, admin_portal=gdap.admin_portal)
    assert made.created and made.locked and made.waiting_for_customer
    (rel,) = named(emu, "Contoso-cspgraph")
    assert rel["status"] == "approvalPending"
    assert made.link == (
        f"{emu.endpoints.authority_host}/AdminPortal/Home#/partners/invitation/"
        f"granularAdminRelationships/{rel['id']}"
    )
    assert made.relationship.customer_id == customer
    assert sorted(made.relationship.roles) == sorted([DIRECTORY_READERS, USER_ADMINISTRATOR])


async def test_inviting_again_by_the_same_name_creates_nothing_and_gives_the_same_link(
    emu: Emulator, gdap: GdapSession
) -> None:
    request = InviteRequest("Open-cspgraph", resolve_roles(["Directory Readers"]))
    first = await invite(gdap.api, request, admin_portal=gdap.admin_portal)
    again = await invite(gdap.api, request, admin_portal=gdap.admin_portal)
    assert (again.created, again.locked) == (False, False)
    assert again.link == first.link
    assert len(named(emu, "Open-cspgraph")) == 1


async def test_a_name_already_used_with_other_roles_is_refused(
    emu: Emulator, gdap: GdapSession
) -> None:
    other = InviteRequest(ACTIVE_NAME, (DIRECTORY_READERS,))
    try:
        await invite(gdap.api, other, admin_portal=gdap.admin_portal)
    except InviteError as exc:
        assert "already exists with other roles" in exc.message
    else:
        raise AssertionError("a relationship of that name with other roles was accepted")


def test_auto_extend_with_global_administrator_is_refused_with_microsofts_reason(
    emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path)
    before = len(world_relationships(emu))
    result = gdap_cli(config, "invite", "--roles", "Global Administrator", "--auto-extend",
                      "--name", "GA-auto")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "Microsoft does not auto-extend relationships that include Global Administrator" in (
        result.stderr
    )
    assert len(world_relationships(emu)) == before
    assert GLOBAL_ADMINISTRATOR in resolve_roles(["Global Administrator"])


def test_the_invite_command_prints_the_link_and_json_when_piped(
    emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path)
    result = gdap_cli(config, "invite", "--customer", GDAP_CUSTOMER, "--roles", "cspgraph",
                      "--duration", "P365D")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == f"cspgraph-{GDAP_CUSTOMER}"
    assert data["status"] == "approvalPending"
    assert data["duration"] == "P365D"
    assert data["approval_link"].endswith(data["id"])
    assert CLOUD_APPLICATION_ADMINISTRATOR in {r["template_id"] for r in data["roles"]}


def test_status_shows_days_left_on_the_world_clock_and_exits_3_when_expiry_nears(
    emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path)
    first = gdap_cli(config, "status", "--customer", GDAP_CUSTOMER, "--no-consent")
    assert first.exit_code == 0, first.output
    (customer,) = json.loads(first.stdout)["customers"]
    (rel,) = customer["relationships"]
    # Activated 30 days ago for P730D: 700 days left, rounded down.
    assert rel["days_left"] in (699, 700)
    assert [a["status"] for a in rel["assignments"]] == ["active"] * 4
    assert {a["group"] for a in rel["assignments"]} >= {"GDAP Readers", "GDAP User Admins"}
    emu.advance(690 * DAY)
    later = gdap_cli(config, "status", "--customer", GDAP_CUSTOMER, "--no-consent")
    assert later.exit_code == 3, later.output
    (customer,) = json.loads(later.stdout)["customers"]
    assert customer["relationships"][0]["days_left"] in (9, 10)
    assert any("does not auto-extend" in why for why in customer["needs_person"])


def test_status_names_what_the_consent_lacks_for_the_sync(emu: Emulator, tmp_path: Path) -> None:
    config = signed_in(emu, tmp_path)
    result = gdap_cli(config, "status")
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    by_id = {c["tenant_id"]: c for c in data["customers"]}
    customer = by_id[tenant_of(emu, GDAP_CUSTOMER).id]
    # The world's consent holds User.Read.All and Group.Read.All; the sync reads more.
    assert customer["consent"]["state"] == "partial"
    assert "Device.Read.All" in customer["consent"]["missing"]
    assert "User.Read.All" not in customer["consent"]["missing"]
    # The app was never consented in freshco: no, not unknown.
    fresh = by_id[tenant_of(emu, FRESH_CUSTOMER).id]
    assert fresh["consent"]["state"] == "no"
    assert any("cspgraph gdap consent" in item["why"] for item in data["needs_person"])


def test_an_approval_waiting_longer_than_the_patience_needs_a_person(
    emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path)
    made = gdap_cli(config, "invite", "--roles", "Directory Readers", "--name", "Waiting")
    assert made.exit_code == 0, made.output
    emu.advance(8 * DAY)
    result = gdap_cli(config, "status", "--no-consent", "--pending-longer-than", "7d")
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert any("waited 8 days" in item["why"] for item in data["needs_person"])


def test_roles_lists_the_catalog_and_the_least_privilege_of_cspgraphs_operations() -> None:
    from typer.testing import CliRunner

    from cspgraph.cli.main import app

    result = CliRunner().invoke(app, ["gdap", "roles", "--all", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by_id = {r["template_id"]: r for r in data["roles"]}
    assert by_id[DIRECTORY_READERS]["name"] == "Directory Readers"
    assert by_id["3a2c62db-5318-420d-8d74-23affee5d9d5"]["name"] == "Intune Administrator"
    assert len(by_id) >= 100
    needs = {n["operation"]: n for n in data["cspgraph_needs"]}
    consent = needs["gdap consent: Partner Center applicationconsents"]
    assert [r["name"] for r in consent["roles"]] == ["Cloud Application Administrator"]
    app_only = needs["sync (the consented app, app-only)"]
    assert "User.Read.All" in app_only["permissions"] and app_only["roles"] == []
    delegated = needs["sync as a technician (delegated)"]
    assert [r["name"] for r in delegated["roles"]] == ["Global Reader"]  # Intune reads included


def test_a_consent_that_cannot_be_checked_is_unknown_not_missing(
    emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path)
    # One token request retried at most once, and the customer's token endpoint failing twice:
    # the app-only token for gdapco cannot be had, for a reason that says nothing of consent.
    config.write_text("token_retries = 1\n" + config.read_text())
    customer = tenant_of(emu, GDAP_CUSTOMER).id
    with control_client(emu) as control:
        added = control.post("/faults", json={"host": "login", "kind": "503", "count": 2,
                                              "path_prefix": f"/{customer}/oauth2"})  # fmt: skip
        assert added.status_code in (200, 201), added.text
    result = gdap_cli(config, "status", "--customer", GDAP_CUSTOMER)
    data = json.loads(result.stdout)
    (entry,) = data["customers"]
    assert entry["consent"]["state"] == "unknown"
    assert "transient" in entry["consent"]["detail"]
    # Unknown is not "missing": nothing to act on, exit 0.
    assert entry["needs_person"] == [] and result.exit_code == 0, result.output


def test_status_without_the_delegated_gdap_permission_needs_a_person_and_names_it(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    world = gdap_world_for_ops()
    app = world["tenant"][0]["app"][0]
    app["delegated_permissions"] = [
        p for p in app["delegated_permissions"] if not p.startswith("DelegatedAdminRelationship")
    ]
    emu = make_emulator(world)
    result = gdap_cli(signed_in(emu, tmp_path), "status", "--no-consent")
    # Not "propagating": the partner's own tenant has nothing on its way; a person adds it.
    assert result.exit_code == 3, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: needs_person: listing GDAP relationships needs the delegated "
                           "permission DelegatedAdminRelationship.Read.All")  # fmt: skip
    assert "cspgraph login" in line and "code=Authorization_RequestDenied" in line
