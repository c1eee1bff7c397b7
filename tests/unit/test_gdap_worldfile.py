"""The world file's GDAP keys: relationships in every status, assignments, consents, settings,
and errors that name the key."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from csp_emulator import roles, wellknown
from csp_emulator.world.consent import consented_roles, consented_scopes
from csp_emulator.world.worldfile import DEMO_PARTNERS, WorldFileError, demo_world, load_world_data
from tests.emulator.gdap_world import APP_ID, GDAP_CUSTOMER, PARTNER, gdap_world

DAY = 86400


def with_relationship(**fields: Any) -> dict[str, Any]:
    data = gdap_world()
    data["gdap"].append(
        {"partner": PARTNER, "customer": GDAP_CUSTOMER, "display_name": "Second",
         "roles": ["Directory Readers"], **fields}
    )  # fmt: skip
    return data


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"status": "created"}, "created"),
        ({"status": "approvalPending"}, "approvalPending"),
        ({"activated_ago": "715d"}, "expiring"),
        ({"activated_ago": "10d"}, "active"),
        ({"status": "expired"}, "expired"),
        ({"status": "terminated"}, "terminated"),
        ({"activated_ago": "800d", "auto_extend": "P180D"}, "active"),
    ],
)
def test_world_file_relationships_start_in_the_status_they_describe(
    fields: dict[str, Any], status: str
) -> None:
    world = load_world_data(with_relationship(**fields))
    (rel,) = [r for r in world.gdap.relationships.values() if r.display_name == "Second"]
    assert rel.status(world.clock.now()) == status


def test_assignments_and_nested_groups_come_from_the_world_file() -> None:
    world = load_world_data(gdap_world())
    partner = world.tenant(PARTNER)
    customer = world.tenant(GDAP_CUSTOMER)
    assert partner is not None and customer is not None
    readers = partner.group_by_name("GDAP Readers")
    helpdesk = partner.group_by_name("GDAP Helpdesk")
    assert readers is not None and helpdesk is not None
    assert helpdesk["id"] in readers["_members"]
    granted = world.gdap.roles_for(partner.id, customer.id, {readers["id"]}, world.clock.now())
    assert granted == [roles.DIRECTORY_READERS]
    assert partner.service_principal_by_app_id(wellknown.PARTNER_DELEGATED_ADMIN_APP_ID)


def test_a_world_file_consent_grants_what_the_app_asks_for() -> None:
    world = load_world_data(gdap_world())
    customer = world.tenant(GDAP_CUSTOMER)
    assert customer is not None
    sp = customer.service_principal_by_app_id(APP_ID)
    assert sp is not None
    now = world.clock.now()
    assert set(consented_roles(customer, sp, now)) == {
        "User.Read.All", "Group.Read.All", "DelegatedAdminRelationship.ReadWrite.All"
    }  # fmt: skip
    assert consented_scopes(customer, sp, now) == [
        "Directory.AccessAsUser.All", "DelegatedAdminRelationship.ReadWrite.All",
        "DeviceManagementManagedDevices.Read.All",
    ]  # fmt: skip


def test_gdap_settings_are_read_with_their_defaults() -> None:
    world = load_world_data({"settings": {"new_customer_access": "gdap", "consent_delay": "2m"}})
    assert world.settings.new_customer_access == "gdap"
    assert world.settings.consent_delay == 120
    assert world.settings.assignment_delay == 60


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["gdap"][0].update(roles=["Chief"]), "gdap[0].roles: 'Chief' is not"),
        (lambda d: d["gdap"][0].update(customer="nowhere.com"), "gdap[0].customer: 'nowhere.com'"),
        (lambda d: d["gdap"][0].update(duration="P3Y"), "gdap[0].duration: must be from P1D"),
        (lambda d: d["gdap"][0]["assignment"][0].update(group="No such group"),
         "gdap[0].assignment[0].group: 'No such group' is not a security group"),
        (lambda d: d["gdap"][0]["assignment"][0].update(roles=["Global Reader"]),
         "gdap[0].assignment[0].roles: 'Global Reader' is not one of the relationship's roles"),
        (lambda d: d["tenant"][1]["consent"][0].update(app="0c7e5c3a-0000-4000-8000-0000ffff"),
         "tenant[1].consent[0].app: no app"),
        (lambda d: d["settings"].update(new_customer_access="both"),
         "settings.new_customer_access"),
    ],
)  # fmt: skip
def test_gdap_errors_name_the_key(change: Any, message: str) -> None:
    data = copy.deepcopy(gdap_world())
    change(data)
    with pytest.raises(WorldFileError) as raised:
        load_world_data(data, source="w.toml")
    assert message in str(raised.value)
    assert str(raised.value).startswith("w.toml: ")


def test_the_demo_world_is_a_mixed_fleet() -> None:
    world = demo_world(3)
    now = world.clock.now()
    partner = world.tenant("partner.com")
    assert partner is not None
    statuses = {
        world.tenants[r.customer_id].display_name: r.status(now)
        for r in world.gdap.relationships.values()
        if r.customer_id
    }
    assert statuses == {
        "Northwind Health": "active",
        "Lakeshore Retail": "active",
        "Zava Outdoors": "expiring",
        "Woodgrove Pharmacy": "expired",
        "Skyline Dental": "approvalPending",
        "Cedar Logistics": "active",
    }
    zava = next(r for r in world.gdap.relationships.values() if "zava" in r.display_name)
    assert zava.end() - now < 20 * DAY
    resold = {t.display_name for t in world.customers_of(partner.id)}
    assert {"Northwind Health", "Zava Outdoors", "Woodgrove Pharmacy"} <= resold
    assert not {"Skyline Dental", "Cedar Logistics", "Harborview Bakery"} & resold
    for name in ("Northwind Health", "Cedar Logistics", "Customer"):
        tenant = next(t for t in world.tenants.values() if name in t.display_name)
        rel = world.relationship(partner.id, tenant.id)
        assert (rel is not None and rel.dap) == (name == "Customer"), name
    cedar = world.tenant("cedarlogistics.onmicrosoft.com")
    assert cedar is not None
    assert cedar.service_principal_by_app_id(DEMO_PARTNERS["NA"]["client_id"]) is None
