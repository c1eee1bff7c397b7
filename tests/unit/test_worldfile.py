"""The world file: the issue's example loads as written, ids are stable, errors say where."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from csp_emulator import wellknown
from csp_emulator.world.model import parse_duration, stable_id
from csp_emulator.world.worldfile import (
    WorldFileError,
    demo_world,
    demo_world_data,
    load_world_data,
    load_world_file,
)

EXAMPLE = Path(__file__).parents[1] / "data" / "example-world.toml"


def test_example_world_loads_as_written() -> None:
    world = load_world_file(EXAMPLE)
    partner = world.tenant("partner.com")
    customer = world.tenant("customer.com")
    assert partner is not None and customer is not None
    assert partner.kind == "partner" and customer.kind == "customer"
    assert partner.display_name == "Fabrikam Partner (NA)"
    assert partner.region == customer.region == "NA"
    # every partner tenant has the three agent groups
    for name in ("AdminAgents", "HelpdeskAgents", "SalesAgents"):
        assert partner.group_by_name(name) is not None
    # the app's service principal is in AdminAgents, as admin_agents = true says
    found = world.application("6731de76-14a6-49ae-97bc-6eba6914391e")
    assert found is not None and found[0] is partner
    sp = partner.service_principal_by_app_id("6731de76-14a6-49ae-97bc-6eba6914391e")
    admin_agents = partner.group_by_name("AdminAgents")
    assert sp is not None and admin_agents is not None
    assert sp["id"] in partner.member_ids(admin_agents["id"])
    # generated objects: exactly what `generate` asked for, plus the customer's admin account
    assert len(customer.objects["users"]) == 25 + 1
    assert len(customer.objects["devices"]) == 10
    assert len(customer.objects["managedDevices"]) == 10
    assert len(customer.objects["groups"]) == 4
    # the relationship is already in effect
    rel = world.relationship(partner.id, customer.id)
    assert rel is not None and rel.in_effect(world.clock.now())
    assert world.settings.propagation_delay == 180
    assert world.settings.token_lifetime == 3600


def test_ids_are_derived_from_domains_and_stable() -> None:
    first, second = load_world_file(EXAMPLE), load_world_file(EXAMPLE)
    customer = first.tenant("customer.com")
    assert customer is not None
    assert customer.id == stable_id("tenant", "customer.com")
    assert sorted(first.tenant("customer.com").objects["users"]) == sorted(  # type: ignore[union-attr]
        second.tenant("customer.com").objects["users"]  # type: ignore[union-attr]
    )


def test_tenant_is_found_by_guid_and_every_verified_domain() -> None:
    world = load_world_file(EXAMPLE)
    customer = world.tenant("customer.com")
    assert customer is not None
    assert "customer.onmicrosoft.com" in customer.domains
    assert world.tenant(customer.id) is customer
    assert world.tenant("CUSTOMER.onmicrosoft.com") is customer
    assert world.tenant("nowhere.com") is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"tenant": [{"domain": "a.com", "colour": "red"}]}, "tenant[0].colour: unknown key"),
        ({"tenant": [{"display_name": "x"}]}, "tenant[0].domain: required key is missing"),
        (
            {"tenant": [{"domain": "a.com", "kind": "reseller"}]},
            "tenant[0].kind: Input should be 'partner' or 'customer'",
        ),
        (
            {"settings": {"propagation_delay": "soon"}},
            "settings.propagation_delay: expected a duration like",
        ),
        (
            {
                "tenant": [
                    {
                        "domain": "p.com",
                        "kind": "partner",
                        "app": [{"display_name": "x", "client_id": "not-a-guid"}],
                    }
                ]
            },
            "tenant[0].app[0].client_id: expected a GUID",
        ),
        (
            {
                "tenant": [
                    {
                        "domain": "p.com",
                        "kind": "partner",
                        "app": [
                            {
                                "display_name": "x",
                                "client_id": "6731de76-14a6-49ae-97bc-6eba6914391e",
                                "application_permissions": ["User.Read.Everything"],
                            }
                        ],
                    }
                ]
            },
            "tenant[0].app[0].application_permissions: unknown Microsoft Graph application "
            "permission 'User.Read.Everything'",
        ),
        (
            {"tenant": [{"domain": "c.com", "partner": "p.com"}]},
            "tenant[0].partner: 'p.com' is not a partner tenant of this world",
        ),
        (
            {"tenant": [{"domain": "c.com"}, {"domain": "c.com"}]},
            "tenant[1].domain: domain c.com belongs to two tenants",
        ),
        (
            {"tenant": [{"domain": "c.com", "user": [{"upn": "x@other.com", "password": "p"}]}]},
            "tenant[0].user[0].upn: 'x@other.com' is not in a domain of this tenant",
        ),
        ({"settings": {"token_lifetime": "4m"}}, "settings.token_lifetime: must be over 5 minutes"),
        (
            {
                "tenant": [
                    {
                        "domain": "c.com",
                        "user": [{"upn": "a@c.com", "password": "p", "roles": ["Chief"]}],
                    }
                ]
            },
            "tenant[0].user[0].roles: unknown directory role 'Chief'",
        ),
        (
            {"tenant": [{"domain": "c.com", "license": [{"sku": "E7", "units": 1}]}]},
            "tenant[0].license[0].sku: unknown sku 'E7'; expected one of: SPE_E3, SPB",
        ),
        (
            {
                "tenant": [
                    {
                        "domain": "c.com",
                        "user": [{"upn": "a@c.com", "password": "p", "licenses": ["SPB"]}],
                    }
                ]
            },
            "tenant[0].user[0].licenses[0]: the tenant bought no 'SPB' (it holds: SPE_E3)",
        ),
    ],
)
def test_errors_name_the_source_the_key_and_what_is_expected(
    data: dict[str, object], expected: str
) -> None:
    with pytest.raises(WorldFileError) as info:
        load_world_data(data, source="w.toml")
    assert str(info.value).startswith("w.toml: ")
    assert expected in str(info.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[settings\n")
    with pytest.raises(WorldFileError, match=r"bad\.toml: not valid TOML"):
        load_world_file(bad)
    with pytest.raises(WorldFileError, match=r"missing\.toml: no such world file"):
        load_world_file(tmp_path / "missing.toml")


def test_demo_world_has_two_regions_and_scales() -> None:
    world = demo_world()
    partners = {t.region: t for t in world.partners()}
    assert set(partners) == {"NA", "EU"}
    for region, partner in partners.items():
        customers = world.customers_of(partner.id)
        assert customers, region
        assert all(c.region == region for c in customers)
    # 36 DAP customers and the GDAP half's seven tenants (demo_gdap.py).
    assert len([t for t in world.tenants.values() if t.kind == "customer"]) == 36 + 7
    sizes = sorted(len(t.objects["users"]) for t in world.tenants.values() if t.kind == "customer")
    assert sizes[0] < 50 < sizes[-1]  # varied sizes: small and large tenants both present
    assert len(demo_world_data(customers=100)["tenant"]) == 102 + 7
    assert len(demo_world_data(customers=100, gdap=False)["tenant"]) == 102


def test_generated_worlds_are_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    # Activity times (last check-in, last sign-in) count back from when the world loads: the
    # same seed loaded at the same moment is the same world.
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)
    a, b = demo_world(customers=5), demo_world(customers=5)
    for tenant_id, tenant in a.tenants.items():
        other = b.tenants[tenant_id]
        for resource, objects in tenant.objects.items():
            assert objects.keys() == other.objects[resource].keys(), resource
            for object_id, obj in objects.items():
                assert obj == other.objects[resource][object_id]


def test_licences_guests_and_stale_devices_are_what_the_world_file_says() -> None:
    world = load_world_data(
        {
            "tenant": [
                {
                    "domain": "c.com",
                    "license": [{"sku": "SPB", "units": 7}, {"sku": "SPE_E3", "units": 3}],
                    "user": [
                        {"upn": "a@c.com", "password": "p", "licenses": ["SPB", "SPE_E3"]},
                        {"upn": "g@c.com", "password": "p", "user_type": "Guest"},
                    ],
                    "generate": {"users": 40, "guests": 3, "managed_devices": 200, "seed": 1},
                }
            ]
        }
    )
    tenant = world.tenant("c.com")
    assert tenant is not None
    skus = {s["skuPartNumber"]: s for s in tenant.objects["subscribedSkus"].values()}
    # Bought as written, whatever the generator assigned.
    assert {p: s["prepaidUnits"]["enabled"] for p, s in skus.items()} == {"SPB": 7, "SPE_E3": 3}
    a = tenant.user_by_upn("a@c.com")
    assert a is not None
    assert sorted(x["skuId"] for x in a["assignedLicenses"]) == sorted(
        [wellknown.SKUS["SPB"].id, wellknown.SKUS["SPE_E3"].id]
    )
    users = list(tenant.objects["users"].values())
    assert sum(u["userType"] == "Guest" for u in users) == 1 + 3
    # Generated users hold the first licence the tenant bought, most of them.
    holders = sum(
        any(x["skuId"] == wellknown.SKUS["SPB"].id for x in u["assignedLicenses"]) for u in users
    )
    assert 1 + 25 <= holders <= 1 + 40
    # A few managed devices stopped checking in a month or more ago; the rest within two days.
    now = world.clock.now()
    ages = [
        now - datetime.fromisoformat(d["lastSyncDateTime"]).timestamp()
        for d in tenant.objects["managedDevices"].values()
    ]
    stale = [age for age in ages if age > 30 * 86400]
    assert 1 <= len(stale) <= 20
    assert all(age < 2 * 86400 + 60 for age in ages if age <= 30 * 86400)


def test_graph_service_principal_publishes_the_permission_catalog() -> None:
    world = load_world_file(EXAMPLE)
    customer = world.tenant("customer.com")
    assert customer is not None
    graph = customer.service_principal_by_app_id(wellknown.GRAPH_APP_ID)
    assert graph is not None
    values = {role["value"] for role in graph["appRoles"]}
    assert {"User.Read.All", "DeviceManagementManagedDevices.Read.All"} <= values


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(90, 90.0), ("90", 90.0), ("1.5s", 1.5), ("3m", 180.0), ("1h30m", 5400.0), ("90d", 7776000.0)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "3 minutes", "-5", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)  # type: ignore[arg-type]
