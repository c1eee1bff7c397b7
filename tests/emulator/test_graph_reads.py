"""Directory reads over HTTPS: users across pages, groups and members, devices, organization,
domains, directory roles, apps and service principals, directory objects, /me, contracts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from csp_emulator import wellknown
from csp_emulator.server import Emulator
from csp_emulator.world.objects import user_json
from csp_emulator.world.worldfile import DEMO_APP_PERMISSIONS, GDAP_READ_PERMISSION
from tests.conftest import MakeEmulator
from tests.emulator.graph_tokens import (
    CUSTOMER_DOMAIN,
    PARTNER_DOMAIN,
    all_pages,
    app_token,
    graph_client,
    graph_emulator,
    graph_world,
    tenant_of,
    user_token,
)

CONTEXT = "https://graph.microsoft.com/v1.0/$metadata#"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """customer.com with 240 generated users: three default pages of 100."""
    with graph_emulator(tmp_path_factory.mktemp("graph-reads")) as emu:
        yield emu


def test_all_users_across_default_pages_without_loss_or_duplicates(big: Emulator) -> None:
    tenant = tenant_of(big, CUSTOMER_DOMAIN)
    with graph_client(big, app_token(big)) as graph:
        pages = all_pages(graph, "/v1.0/users")
    ids = [u["id"] for page in pages for u in page["value"]]
    assert len(pages) == 3 and [len(p["value"]) for p in pages] == [100, 100, 42]
    assert len(ids) == len(set(ids)) == len(tenant.objects["users"])
    assert set(ids) == set(tenant.objects["users"])
    # The nextLink is absolute, on the emulator's Graph origin, with an opaque $skiptoken.
    next_link = pages[0]["@odata.nextLink"]
    assert next_link.startswith(big.endpoints.graph + "/v1.0/users?")
    assert list(parse_qs(urlsplit(next_link).query)) == ["$skiptoken"]
    assert all(p["@odata.context"] == CONTEXT + "users" for p in pages)
    assert "@odata.nextLink" not in pages[-1]


def test_next_links_keep_the_other_query_options(big: Emulator) -> None:
    with graph_client(big, app_token(big)) as graph:
        pages = all_pages(graph, "/v1.0/users?$select=id,displayName&$top=50")
    query = parse_qs(urlsplit(pages[0]["@odata.nextLink"]).query)
    assert query["$select"] == ["id,displayName"] and query["$top"] == ["50"]
    assert [len(p["value"]) for p in pages] == [50, 50, 50, 50, 42]
    assert pages[1]["@odata.context"] == CONTEXT + "users(id,displayName)"
    assert set(pages[2]["value"][0]) == {"id", "displayName"}


def test_paging_is_stable_when_users_come_and_go_between_pages(big: Emulator) -> None:
    """A skiptoken names the last id served, not an offset: changes before it shift nothing."""
    tenant = tenant_of(big, CUSTOMER_DOMAIN)
    before = sorted(tenant.objects["users"])
    newcomer = user_json(
        tenant, "aaron.first@customer.com", object_id="00000000-0000-4000-8000-000000000001"
    )
    with graph_client(big, app_token(big)) as graph:
        first = graph.get("/v1.0/users", params={"$top": "60"}).json()
        served = [u["id"] for u in first["value"]]

        def churn() -> dict[str, Any]:
            # Delete one already served, add one that sorts before everything served.
            tenant.add("users", newcomer)
            return tenant.remove("users", served[0])

        removed = big.call(churn)
        try:
            second = graph.get(first["@odata.nextLink"]).json()
        finally:
            big.call(lambda: (tenant.remove("users", newcomer["id"]), tenant.add("users", removed)))
    later = [u["id"] for u in second["value"]]
    assert later == before[before.index(served[-1]) + 1 :][:60]


def test_default_user_properties_and_entity_context(emulator: Emulator) -> None:
    tenant = tenant_of(emulator, CUSTOMER_DOMAIN)
    admin = tenant.user_by_upn(f"admin@{tenant.initial_domain}")
    assert admin is not None
    with graph_client(emulator, app_token(emulator)) as graph:
        by_id = graph.get(f"/v1.0/users/{admin['id']}")
        by_upn = graph.get(f"/v1.0/users/{admin['userPrincipalName'].upper()}")
    assert by_id.status_code == by_upn.status_code == 200
    body = by_id.json()
    assert body["@odata.context"] == CONTEXT + "users/$entity"
    assert list(body)[1:] == [
        "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
        "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id",
    ]  # fmt: skip
    assert by_upn.json()["id"] == admin["id"]
    assert "_password" not in by_id.text and "accountEnabled" not in body


def test_seed_call_beta_users_with_a_partner_agent_token(emulator: Emulator) -> None:
    """The CSP topic's own example: GET https://graph.microsoft.com/beta/users with an agent's
    delegated token for the customer."""
    token = user_token(emulator, CUSTOMER_DOMAIN, partner_ref=PARTNER_DOMAIN)
    with graph_client(emulator, token) as graph:
        response = graph.get("/beta/users")
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"] == "https://graph.microsoft.com/beta/$metadata#users"
    assert len(body["value"]) == len(tenant_of(emulator, CUSTOMER_DOMAIN).objects["users"])


def test_groups_members_transitive_members_and_member_count(emulator: Emulator) -> None:
    tenant = tenant_of(emulator, CUSTOMER_DOMAIN)
    group = next(g for g in tenant.objects["groups"].values() if g["_members"])
    with graph_client(emulator, app_token(emulator), ConsistencyLevel="eventual") as graph:
        groups = graph.get("/v1.0/groups").json()
        members = graph.get(f"/v1.0/groups/{group['id']}/members").json()
        transitive = graph.get(f"/v1.0/groups/{group['id']}/transitiveMembers").json()
        count = graph.get(f"/v1.0/groups/{group['id']}/members/$count")
    assert {g["id"] for g in groups["value"]} == set(tenant.objects["groups"])
    assert members["@odata.context"] == CONTEXT + "directoryObjects"
    assert {m["id"] for m in members["value"]} == set(group["_members"])
    assert {m["@odata.type"] for m in members["value"]} == {"#microsoft.graph.user"}
    assert {m["id"] for m in transitive["value"]} == set(group["_members"])
    assert count.headers["content-type"].startswith("text/plain")
    assert count.text == str(len(group["_members"]))


def test_nested_groups_show_up_in_transitive_members(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(graph_world())
    tenant = tenant_of(emu, CUSTOMER_DOMAIN)
    outer, inner = list(tenant.objects["groups"].values())[:2]
    nested_only = next(u for u in inner["_members"] if u not in outer["_members"])
    emu.call(lambda: tenant.add_member(outer["id"], inner["id"]))
    with graph_client(emu, app_token(emu)) as graph:
        direct = all_pages(graph, f"/v1.0/groups/{outer['id']}/members")
        transitive = all_pages(graph, f"/v1.0/groups/{outer['id']}/transitiveMembers")
        member_of = graph.get(f"/v1.0/users/{nested_only}/memberOf").json()
    direct_ids = {m["id"] for p in direct for m in p["value"]}
    transitive_ids = {m["id"] for p in transitive for m in p["value"]}
    assert inner["id"] in direct_ids and nested_only not in direct_ids
    assert {inner["id"], nested_only} <= transitive_ids
    assert {g["id"] for g in member_of["value"]} == {
        g["id"] for g in tenant.objects["groups"].values() if nested_only in g["_members"]
    }


def test_devices_organization_domains_and_skus(emulator: Emulator) -> None:
    tenant = tenant_of(emulator, CUSTOMER_DOMAIN)
    with graph_client(emulator, app_token(emulator)) as graph:
        devices = graph.get("/v1.0/devices").json()
        org = graph.get("/v1.0/organization").json()
        org_item = graph.get(f"/v1.0/organization/{tenant.id}").json()
        skus = graph.get("/v1.0/subscribedSkus").json()
    assert {d["id"] for d in devices["value"]} == set(tenant.objects["devices"])
    assert org["@odata.context"] == CONTEXT + "organization"
    assert org["value"][0]["id"] == tenant.id == org_item["id"]
    assert org["value"][0]["verifiedDomains"][0]["name"] == CUSTOMER_DOMAIN
    assert skus["value"][0]["servicePlans"][0]["servicePlanName"] == "INTUNE_A"
    # consumedUnits counts the users the licence is assigned to, as Graph does.
    [sku] = skus["value"]
    holders = [
        u for u in tenant.objects["users"].values()
        if any(a["skuId"] == sku["skuId"] for a in u.get("assignedLicenses", []))
    ]  # fmt: skip
    assert sku["consumedUnits"] == len(holders) > 0
    assert sku["prepaidUnits"]["enabled"] >= sku["consumedUnits"]
    # Domains need Domain.Read.All, which the demo app does not have: least privilege at work.
    with graph_client(emulator, app_token(emulator, roles=["Domain.Read.All"])) as graph:
        domains = graph.get("/v1.0/domains").json()
        one = graph.get("/v1.0/domains/CUSTOMER.COM")
    assert [d["id"] for d in domains["value"]] == sorted(tenant.domains)
    assert one.status_code == 200 and one.json()["isDefault"] is True


def test_directory_roles_and_their_members(emulator: Emulator) -> None:
    tenant = tenant_of(emulator, CUSTOMER_DOMAIN)
    with graph_client(emulator, app_token(emulator, roles=["Directory.Read.All"])) as graph:
        roles = graph.get("/v1.0/directoryRoles").json()
        admin_role = next(
            r for r in roles["value"] if r["roleTemplateId"] == wellknown.ROLE_GLOBAL_ADMIN
        )
        members = graph.get(f"/v1.0/directoryRoles/{admin_role['id']}/members").json()
        paged = graph.get("/v1.0/directoryRoles?$top=1")
    assert admin_role["displayName"] == "Global Administrator"
    assert "_members" not in admin_role and "@odata.nextLink" not in roles
    assert [m["userPrincipalName"] for m in members["value"]] == [f"admin@{tenant.initial_domain}"]
    assert paged.status_code == 400  # no paging and no query options on directoryRoles


def test_applications_and_service_principals_by_app_id(emulator: Emulator) -> None:
    partner = tenant_of(emulator, PARTNER_DOMAIN)
    app = next(iter(partner.objects["applications"].values()))
    token = app_token(emulator, PARTNER_DOMAIN, roles=["Application.Read.All"])
    with graph_client(emulator, token) as graph:
        apps = graph.get("/v1.0/applications").json()
        sps = graph.get("/v1.0/servicePrincipals", params={"$filter": f"appId eq '{app['appId']}'"})
        by_key = graph.get(f"/v1.0/applications(appId='{app['appId']}')").json()
        sp = sps.json()["value"][0]
        assignments = graph.get(f"/v1.0/servicePrincipals/{sp['id']}/appRoleAssignments").json()
    assert [a["appId"] for a in apps["value"]] == [app["appId"]]
    assert "_secrets" not in str(apps) and apps["value"][0]["passwordCredentials"][0]["hint"]
    assert sps.status_code == 200 and len(sps.json()["value"]) == 1
    assert by_key["id"] == app["id"]
    granted = {a["appRoleId"] for a in assignments["value"]}
    # The demo app's application permissions, its partner's GDAP relationships among them.
    assert granted == {
        wellknown.APPLICATION_PERMISSIONS[p].id
        for p in (*DEMO_APP_PERMISSIONS, GDAP_READ_PERMISSION)
    }


def test_directory_objects_by_id_and_get_by_ids(emulator: Emulator) -> None:
    tenant = tenant_of(emulator, CUSTOMER_DOMAIN)
    user_id = next(iter(tenant.objects["users"]))
    group_id = next(iter(tenant.objects["groups"]))
    token = app_token(emulator, roles=["Directory.Read.All"])
    with graph_client(emulator, token) as graph:
        one = graph.get(f"/v1.0/directoryObjects/{user_id}").json()
        many = graph.post(
            "/v1.0/directoryObjects/getByIds",
            json={"ids": [user_id, group_id, "00000000-0000-0000-0000-000000000001"]},
        ).json()
        users_only = graph.post(
            "/v1.0/directoryObjects/microsoft.graph.getByIds",
            json={"ids": [user_id, group_id], "types": ["user"]},
        ).json()
    assert one["@odata.type"] == "#microsoft.graph.user" and one["id"] == user_id
    assert one["@odata.context"] == CONTEXT + "directoryObjects/$entity"
    assert [(o["@odata.type"], o["id"]) for o in many["value"]] == [
        ("#microsoft.graph.user", user_id),
        ("#microsoft.graph.group", group_id),
    ]
    assert [o["id"] for o in users_only["value"]] == [user_id]


def test_me_and_my_memberships_with_a_delegated_token(emulator: Emulator) -> None:
    partner = tenant_of(emulator, PARTNER_DOMAIN)
    agents = partner.group_by_name("AdminAgents")
    assert agents is not None
    token = user_token(emulator, PARTNER_DOMAIN, upn="agent@partner.com", scp="User.Read", wids=())
    with graph_client(emulator, token) as graph:
        me = graph.get("/v1.0/me").json()
        member_of = graph.get("/v1.0/me/memberOf").json()
    assert me["userPrincipalName"] == "agent@partner.com"
    assert member_of["@odata.context"] == CONTEXT + "directoryObjects"
    assert [(g["@odata.type"], g["displayName"]) for g in member_of["value"]] == [
        ("#microsoft.graph.group", "AdminAgents")
    ]


def test_contracts_list_one_per_customer_in_the_partner_tenant(emulator: Emulator) -> None:
    partner = tenant_of(emulator, PARTNER_DOMAIN)
    customers = emulator.world.customers_of(partner.id)
    token = app_token(emulator, PARTNER_DOMAIN, roles=["Directory.Read.All"])
    with graph_client(emulator, token) as graph:
        contracts = all_pages(graph, "/v1.0/contracts")
    values = [c for page in contracts for c in page["value"]]
    assert {c["customerId"] for c in values} == {c.id for c in customers}
    assert {c["contractType"] for c in values} == {"ResellerPartner"}
    contoso = next(c for c in values if c["defaultDomainName"] == CUSTOMER_DOMAIN)
    assert contoso["displayName"] == "Contoso Customer" and GUID.match(contoso["id"])
    # A customer tenant has no contracts of its own.
    customer_token = app_token(emulator, roles=["Directory.Read.All"])
    with graph_client(emulator, customer_token) as graph:
        assert graph.get("/v1.0/contracts").json()["value"] == []
