"""Graph's /tenantRelationships against the emulator: GDAP relationships on the world clock,
etags, requests, access assignments and their operations, delegated-admin customers, who may
call, and the empty 200 for callers outside AdminAgents."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from csp_emulator import roles
from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator
from tests.emulator.gdap_world import ACTIVE_NAME, GDAP_CUSTOMER, PARTNER, gdap_world
from tests.emulator.graph_tokens import (
    app_token,
    control_client,
    graph_client,
    tenant_of,
    user_token,
)

BASE = "/v1.0/tenantRelationships/delegatedAdminRelationships"
GDAP_SCOPE = "DelegatedAdminRelationship.ReadWrite.All"
DAY = 86400


def partner_user(emu: Emulator, upn: str = "agent@partner.com") -> httpx.Client:
    token = user_token(emu, PARTNER, upn=upn, scp=GDAP_SCOPE, wids=())
    return graph_client(emu, token)


@pytest.fixture
def emu(make_emulator: MakeEmulator) -> Emulator:
    return make_emulator(gdap_world())


@pytest.fixture
def graph(emu: Emulator) -> Iterator[httpx.Client]:
    with partner_user(emu) as client:
        yield client


def new_relationship(graph: httpx.Client, emu: Emulator, **overrides: Any) -> dict[str, Any]:
    body = {
        "displayName": "Contoso admin relationship",
        "duration": "P730D",
        "customer": {"tenantId": tenant_of(emu, GDAP_CUSTOMER).id},
        "accessDetails": {"unifiedRoles": [{"roleDefinitionId": roles.USER_ADMINISTRATOR},
                                           {"roleDefinitionId": roles.DIRECTORY_READERS}]},
    }  # fmt: skip
    body.update(overrides)
    answer = graph.post(BASE, json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def approve(emu: Emulator, rel_id: str) -> None:
    with control_client(emu) as control:
        answer = control.post(f"/gdap/{rel_id}/approve")
        assert answer.status_code == 200, answer.text


def read(emu: Emulator, path: str) -> dict[str, Any]:
    """A GET with a token minted now: tests move the clock by days, past any token's life."""
    with partner_user(emu) as graph:
        answer = graph.get(path)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def status_of(emu: Emulator, rel_id: str) -> str:
    return str(read(emu, f"{BASE}/{rel_id}")["status"])


# -- reading ---------------------------------------------------------------------------------------


def test_an_admin_agent_lists_the_partners_relationships_with_etags(
    emu: Emulator, graph: httpx.Client
) -> None:
    body = graph.get(BASE).json()
    (rel,) = body["value"]
    assert rel["displayName"] == ACTIVE_NAME
    assert rel["status"] == "active"
    assert rel["customer"] == {
        "tenantId": tenant_of(emu, GDAP_CUSTOMER).id,
        "displayName": tenant_of(emu, GDAP_CUSTOMER).display_name,
    }
    assert rel["@odata.etag"].startswith('W/"')
    assert {r["roleDefinitionId"] for r in rel["accessDetails"]["unifiedRoles"]} >= {
        roles.DIRECTORY_READERS,
        roles.USER_ADMINISTRATOR,
    }
    assert len(rel["id"]) == 73  # two GUIDs joined by a hyphen
    assert body["@odata.context"].endswith("#tenantRelationships/delegatedAdminRelationships")


def test_a_partner_user_outside_admin_agents_gets_an_empty_200(emu: Emulator) -> None:
    with partner_user(emu, "tech@partner.com") as outsider, partner_user(emu) as agent:
        rel_id = agent.get(BASE).json()["value"][0]["id"]
        listed = outsider.get(BASE)
        customers = outsider.get("/v1.0/tenantRelationships/delegatedAdminCustomers")
        one = outsider.get(f"{BASE}/{rel_id}")
    assert listed.status_code == 200 and listed.json()["value"] == []
    assert customers.status_code == 200 and customers.json()["value"] == []
    assert one.status_code == 403


def test_lists_filter_select_count_and_page(emu: Emulator, graph: httpx.Client) -> None:
    new_relationship(graph, emu, displayName="Second")
    customer_id = tenant_of(emu, GDAP_CUSTOMER).id
    active = graph.get(BASE, params={"$filter": "status eq 'active'"}).json()["value"]
    assert [r["displayName"] for r in active] == [ACTIVE_NAME]
    by_customer = graph.get(BASE, params={"$filter": f"customer/tenantId eq '{customer_id}'"})
    assert len(by_customer.json()["value"]) == 2
    not_active = graph.get(BASE, params={"$filter": "status ne 'active'"}).json()["value"]
    assert [r["status"] for r in not_active] == ["created"]
    counted = graph.get(BASE, params={"$count": "true", "$select": "displayName,status"}).json()
    assert counted["@odata.count"] == 2
    for item in counted["value"]:
        assert set(item) == {"@odata.type", "@odata.etag", "displayName", "status"}
    ordered = graph.get(BASE, params={"$orderby": "displayName desc"}).json()["value"]
    assert [r["displayName"] for r in ordered] == ["Second", ACTIVE_NAME]
    first = graph.get(BASE, params={"$top": "1"}).json()
    second = graph.get(first["@odata.nextLink"]).json()
    assert len(first["value"]) == len(second["value"]) == 1
    assert first["value"][0]["id"] != second["value"][0]["id"]
    too_many = graph.get(BASE, params={"$top": "301"})
    assert (
        too_many.status_code == 400 and "between 1 and 300" in too_many.json()["error"]["message"]
    )


def test_beta_serves_the_same_relationships(graph: httpx.Client) -> None:
    beta = graph.get("/beta/tenantRelationships/delegatedAdminRelationships").json()["value"]
    assert [r["displayName"] for r in beta] == [ACTIVE_NAME]


def test_a_malformed_id_is_refused_in_the_services_words(graph: httpx.Client) -> None:
    answer = graph.get(f"{BASE}/not-an-id")
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        **answer.json()["error"],
        "code": "badRequest",
        "message": "The passed in delegatedAdminRelationshipId is invalid.",
    }


# -- the lifecycle ---------------------------------------------------------------------------------


def test_a_relationship_lives_its_lifecycle_on_the_world_clock(
    emu: Emulator, graph: httpx.Client
) -> None:
    created = new_relationship(graph, emu)
    rel_id = created["id"]
    assert created["status"] == "created" and created["activatedDateTime"] is None
    locked = graph.post(f"{BASE}/{rel_id}/requests", json={"action": "lockForApproval"})
    assert locked.status_code == 201 and locked.json()["status"] == "created"
    assert locked.headers["Location"].endswith(f"/requests/{locked.json()['id']}")
    assert status_of(emu, rel_id) == "approvalPending"
    request = graph.get(f"{BASE}/{rel_id}/requests").json()["value"][0]
    assert request["status"] == "pending"

    approve(emu, rel_id)  # propagation_delay is 3 minutes in this world
    assert status_of(emu, rel_id) == "approved"
    emu.advance(100)
    assert status_of(emu, rel_id) == "activating"
    emu.advance(100)
    active = graph.get(f"{BASE}/{rel_id}").json()
    assert active["status"] == "active"
    assert graph.get(f"{BASE}/{rel_id}/requests").json()["value"][0]["status"] == "succeeded"
    activated = active["activatedDateTime"]
    assert activated is not None and active["endDateTime"] > activated

    emu.advance(730 * DAY - 29 * DAY)
    assert status_of(emu, rel_id) == "expiring"
    emu.advance(30 * DAY)
    assert status_of(emu, rel_id) == "expired"


def test_an_auto_extending_relationship_is_extended_instead_of_expiring(
    emu: Emulator, graph: httpx.Client
) -> None:
    rel_id = new_relationship(graph, emu, autoExtendDuration="P180D", duration="P10D")["id"]
    graph.post(f"{BASE}/{rel_id}/requests", json={"action": "lockForApproval"})
    approve(emu, rel_id)
    emu.advance(200)
    end = graph.get(f"{BASE}/{rel_id}").json()["endDateTime"]
    emu.advance(11 * DAY)
    after = read(emu, f"{BASE}/{rel_id}")
    assert after["status"] == "active"
    assert after["endDateTime"] > end


def test_an_unapproved_relationship_expires_after_ninety_days(
    emu: Emulator, graph: httpx.Client
) -> None:
    rel_id = new_relationship(graph, emu)["id"]
    graph.post(f"{BASE}/{rel_id}/requests", json={"action": "lockForApproval"})
    emu.advance(89 * DAY)
    assert status_of(emu, rel_id) == "approvalPending"
    emu.advance(2 * DAY)
    assert status_of(emu, rel_id) == "expired"
    assert read(emu, f"{BASE}/{rel_id}/requests")["value"][0]["status"] == "failed"


def test_terminating_passes_through_its_statuses_and_ends_the_customer_listing(
    emu: Emulator, graph: httpx.Client
) -> None:
    customers = "/v1.0/tenantRelationships/delegatedAdminCustomers"
    (customer,) = graph.get(customers).json()["value"]
    assert customer["tenantId"] == tenant_of(emu, GDAP_CUSTOMER).id
    details = graph.get(f"{customers}/{customer['id']}/serviceManagementDetails").json()["value"]
    assert details and all(d["serviceManagementUrl"].startswith("https://") for d in details)
    rel_id = graph.get(BASE).json()["value"][0]["id"]
    answer = graph.post(f"{BASE}/{rel_id}/requests", json={"action": "terminate"})
    assert answer.status_code == 201
    assert status_of(emu, rel_id) == "terminationRequested"
    emu.advance(100)
    assert status_of(emu, rel_id) == "terminating"
    emu.advance(100)
    assert status_of(emu, rel_id) == "terminated"
    assert graph.get(customers).json()["value"] == []
    assert graph.get(f"{customers}/{customer['id']}").status_code == 404


def test_the_customer_side_actions_are_not_the_partners(emu: Emulator, graph: httpx.Client) -> None:
    rel_id = new_relationship(graph, emu)["id"]
    answer = graph.post(f"{BASE}/{rel_id}/requests", json={"action": "approve"})
    assert answer.status_code == 400
    assert status_of(emu, rel_id) == "created"


# -- creating, changing and deleting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "status", "words"),
    [
        ({"displayName": "x" * 51}, 400, "at most 50"),
        ({"displayName": ACTIVE_NAME}, 409, "The resource already exists."),
        ({"duration": "P3Y"}, 400, "between P1D and P2Y"),
        ({"duration": "730 days, 0:00:00"}, 400, "ISO 8601"),
        ({"autoExtendDuration": "P90D"}, 400, "PT0S, P0D or P180D"),
        ({"accessDetails": {"unifiedRoles": [{"roleDefinitionId": "nope"}]}}, 400, "'nope'"),
        (
            {"autoExtendDuration": "P180D",
             "accessDetails": {"unifiedRoles": [{"roleDefinitionId": roles.GLOBAL_ADMINISTRATOR}]}},
            400,
            "Global Administrator",
        ),
    ],
)  # fmt: skip
def test_a_bad_new_relationship_is_refused(
    emu: Emulator, graph: httpx.Client, overrides: dict[str, Any], status: int, words: str
) -> None:
    body = {
        "displayName": "New one",
        "duration": "P730D",
        "accessDetails": {"unifiedRoles": [{"roleDefinitionId": roles.USER_ADMINISTRATOR}]},
        **overrides,
    }
    answer = graph.post(BASE, json=body)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]["message"]
    if status == 409:
        assert answer.json()["error"]["code"] == "conflict"


def test_patch_and_delete_need_the_current_etag(emu: Emulator, graph: httpx.Client) -> None:
    created = new_relationship(graph, emu)
    url = f"{BASE}/{created['id']}"
    assert graph.patch(url, json={"displayName": "Renamed"}).status_code == 400
    stale = graph.patch(url, json={"displayName": "Renamed"}, headers={"If-Match": 'W/"old"'})
    assert stale.status_code == 412
    renamed = graph.patch(
        url, json={"displayName": "Renamed"}, headers={"If-Match": created["@odata.etag"]}
    )
    assert renamed.status_code == 200 and renamed.json()["displayName"] == "Renamed"
    assert renamed.json()["@odata.etag"] != created["@odata.etag"]
    again = graph.delete(url, headers={"If-Match": created["@odata.etag"]})
    assert again.status_code == 412
    assert graph.delete(url, headers={"If-Match": renamed.json()["@odata.etag"]}).status_code == 204
    assert graph.get(url).status_code == 404


def test_an_active_relationship_changes_only_its_auto_extension(graph: httpx.Client) -> None:
    rel = graph.get(BASE).json()["value"][0]
    url = f"{BASE}/{rel['id']}"
    headers = {"If-Match": rel["@odata.etag"]}
    refused = graph.patch(url, json={"displayName": "Another name"}, headers=headers)
    assert refused.status_code == 400 and "'active'" in refused.json()["error"]["message"]
    # Global Administrator is not among this relationship's roles, so it may auto-extend.
    extended = graph.patch(url, json={"autoExtendDuration": "P180D"}, headers=headers)
    assert extended.status_code == 200 and extended.json()["autoExtendDuration"] == "P180D"
    deleted = graph.delete(url, headers={"If-Match": extended.json()["@odata.etag"]})
    assert deleted.status_code == 400


# -- access assignments and operations -------------------------------------------------------------


def group_id(emu: Emulator, name: str) -> str:
    group = tenant_of(emu, PARTNER).group_by_name(name)
    assert group is not None
    return str(group["id"])


def assignment_body(group: str, *role_ids: str) -> dict[str, Any]:
    return {
        "accessContainer": {"accessContainerId": group, "accessContainerType": "securityGroup"},
        "accessDetails": {"unifiedRoles": [{"roleDefinitionId": r} for r in role_ids]},
    }


def test_an_access_assignment_becomes_active_after_the_assignment_delay(
    emu: Emulator, graph: httpx.Client
) -> None:
    rel_id = graph.get(BASE).json()["value"][0]["id"]
    url = f"{BASE}/{rel_id}/accessAssignments"
    new_group = "6e7f0a62-1f1c-4f8b-9a8e-000000000001"
    with control_client(emu) as control:
        control.post(
            "/tenants/partner.com/groups",
            json={"id": new_group, "displayName": "New GDAP group", "securityEnabled": True},
        )
    made = graph.post(url, json=assignment_body(new_group, roles.DIRECTORY_READERS))
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "pending"
    assert made.headers["Location"].endswith(made.json()["id"])
    emu.advance(61)
    assert graph.get(f"{url}/{made.json()['id']}").json()["status"] == "active"


@pytest.mark.parametrize(
    ("group_name", "role", "status", "words"),
    [
        ("GDAP Readers", roles.GLOBAL_ADMINISTRATOR, 400, "not part of"),
        (None, roles.DIRECTORY_READERS, 400, "access container"),
        ("GDAP Readers", roles.DIRECTORY_READERS, 409, "The resource already exists."),
    ],
)
def test_a_bad_access_assignment_is_refused(
    emu: Emulator, graph: httpx.Client, group_name: str | None, role: str, status: int, words: str
) -> None:
    rel_id = graph.get(BASE).json()["value"][0]["id"]
    group = group_id(emu, group_name) if group_name else "0b1e7a52-0000-4000-8000-000000000000"
    answer = graph.post(f"{BASE}/{rel_id}/accessAssignments", json=assignment_body(group, role))
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]["message"]


def test_changing_an_assignments_roles_is_a_long_running_operation(
    emu: Emulator, graph: httpx.Client
) -> None:
    rel_id = graph.get(BASE).json()["value"][0]["id"]
    url = f"{BASE}/{rel_id}/accessAssignments"
    assignment = next(
        a for a in graph.get(url).json()["value"]
        if a["accessContainer"]["accessContainerId"] == group_id(emu, "GDAP Readers")
    )  # fmt: skip
    one = f"{url}/{assignment['id']}"
    same = graph.patch(one, json={"accessDetails": assignment["accessDetails"]},
                       headers={"If-Match": assignment["@odata.etag"]})  # fmt: skip
    assert same.status_code == 200 and same.json()["id"] == assignment["id"]
    wider = assignment_body("x", roles.DIRECTORY_READERS, roles.HELPDESK_ADMINISTRATOR)
    changed = graph.patch(one, json={"accessDetails": wider["accessDetails"]},
                          headers={"If-Match": assignment["@odata.etag"]})  # fmt: skip
    assert changed.status_code == 202, changed.text
    assert changed.headers["Retry-After"] == "10"
    operation_url = changed.headers["Location"]
    assert f"/{rel_id}/operations/" in operation_url
    operation = graph.get(operation_url).json()
    assert operation["operationType"] == "delegatedAdminAccessAssignmentUpdate"
    assert operation["status"] in ("notStarted", "running")
    assert len(graph.get(one).json()["accessDetails"]["unifiedRoles"]) == 1
    emu.advance(61)
    assert graph.get(operation_url).json()["status"] == "succeeded"
    assert len(graph.get(one).json()["accessDetails"]["unifiedRoles"]) == 2
    listed = graph.get(f"{BASE}/{rel_id}/operations").json()["value"]
    assert [o["id"] for o in listed] == [operation["id"]]


def test_a_deleted_assignment_is_deleting_then_gone(emu: Emulator, graph: httpx.Client) -> None:
    rel_id = graph.get(BASE).json()["value"][0]["id"]
    url = f"{BASE}/{rel_id}/accessAssignments"
    assignment = graph.get(url).json()["value"][0]
    one = f"{url}/{assignment['id']}"
    assert graph.delete(one, headers={"If-Match": assignment["@odata.etag"]}).status_code == 204
    assert graph.get(one).json()["status"] == "deleting"
    emu.advance(61)
    assert graph.get(one).status_code == 404


# -- app-only callers ------------------------------------------------------------------------------


def test_app_only_callers_need_the_partner_delegated_admin_service_principal(
    make_emulator: MakeEmulator,
) -> None:
    roles_claim = ["DelegatedAdminRelationship.Read.All"]
    with_sp = make_emulator(gdap_world())
    sp = tenant_of(with_sp, PARTNER).service_principal_by_app_id(
        "6731de76-14a6-49ae-97bc-6eba6914391e"
    )
    assert sp is not None
    token = app_token(with_sp, PARTNER, roles=roles_claim, oid=sp["id"], sub=sp["id"])
    with graph_client(with_sp, token) as graph:
        assert [r["displayName"] for r in graph.get(BASE).json()["value"]] == [ACTIVE_NAME]
        # Directory.AccessAsUser.All or directory permissions do not open these APIs.
    other = graph_client(with_sp, app_token(with_sp, PARTNER, roles=["Directory.Read.All"]))
    with other:
        assert other.get(BASE).status_code == 403

    data = gdap_world()
    data["tenant"][0]["gdap_api"] = False
    without_sp = make_emulator(data)
    token = app_token(without_sp, PARTNER, roles=roles_claim)
    with graph_client(without_sp, token) as graph:
        answer = graph.get(BASE)
    assert answer.status_code == 403
    assert "Partner Customer Delegated Administration" in answer.json()["error"]["message"]


def test_a_customer_tenant_has_no_relationships_to_manage(emu: Emulator) -> None:
    token = user_token(emu, GDAP_CUSTOMER, scp=GDAP_SCOPE)
    with graph_client(emu, token) as graph:
        assert graph.get(BASE).status_code == 403
