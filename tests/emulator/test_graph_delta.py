"""Delta queries over HTTPS: a full round, then the additions, updates and deletions made behind
Graph's back through the control API, group membership changes, token rules."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator
from tests.emulator.graph_tokens import (
    CUSTOMER_DOMAIN,
    app_token,
    control_client,
    graph_client,
    graph_world,
    tenant_of,
)

CONTEXT = "https://graph.microsoft.com/v1.0/$metadata#"


@pytest.fixture
def emu(make_emulator: MakeEmulator) -> Emulator:
    return make_emulator(graph_world())


def delta_round(graph: httpx.Client, url: str, **kwargs: Any) -> tuple[list[dict[str, Any]], str]:
    """Every page of one delta round: (pages, the deltaLink that ends it)."""
    pages = []
    next_url: str | None = url
    while next_url is not None:
        response = graph.get(next_url, **kwargs)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        assert not ("@odata.nextLink" in page and "@odata.deltaLink" in page)
        next_url = page.get("@odata.nextLink")
    return pages, pages[-1]["@odata.deltaLink"]


def items(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for page in pages for item in page["value"]]


def test_users_delta_reports_additions_updates_and_deletions(emu: Emulator) -> None:
    tenant = tenant_of(emu, CUSTOMER_DOMAIN)
    everyone = sorted(tenant.objects["users"])
    with graph_client(emu, app_token(emu), Prefer="odata.maxpagesize=100") as graph:
        pages, delta_link = delta_round(graph, "/v1.0/users/delta?$select=displayName,jobTitle")
        # Full round: every user once, in pages, with the selection embedded in the links.
        assert [u["id"] for u in items(pages)] == everyone
        assert len(pages) == 3
        assert pages[0]["@odata.context"] == CONTEXT + "users(displayName,jobTitle)"
        assert pages[1]["@odata.context"] == CONTEXT + "users"
        assert "$select" not in pages[0]["@odata.nextLink"]
        assert delta_link.startswith(emu.endpoints.graph + "/v1.0/users/delta?$deltatoken=")
        assert all(set(u) <= {"id", "displayName", "jobTitle"} for u in items(pages))

        updated, soft_deleted, hard_deleted = everyone[5], everyone[6], everyone[7]
        with control_client(emu) as control:
            base = f"/tenants/{CUSTOMER_DOMAIN}/users"
            added = control.post(base, json={"userPrincipalName": "delta.new@customer.com"})
            assert added.status_code == 201
            assert control.patch(f"{base}/{updated}", json={"jobTitle": "CEO"}).status_code == 200
            assert control.delete(f"{base}/{soft_deleted}").status_code == 204
            assert control.delete(f"{base}/{hard_deleted}?reason=deleted").status_code == 204

        changes, next_link = delta_round(graph, delta_link)
        by_id = {c["id"]: c for c in items(changes)}
        assert set(by_id) == {added.json()["id"], updated, soft_deleted, hard_deleted}
        assert by_id[updated]["jobTitle"] == "CEO"
        assert set(by_id[updated]) <= {"id", "displayName", "jobTitle"}  # $select kept
        assert by_id[added.json()["id"]]["displayName"] == "Delta New"
        assert by_id[soft_deleted] == {"id": soft_deleted, "@removed": {"reason": "changed"}}
        assert by_id[hard_deleted] == {"id": hard_deleted, "@removed": {"reason": "deleted"}}

        # Nothing happened since: an empty page that still ends with a deltaLink.
        quiet = graph.get(next_link).json()
        assert quiet["value"] == [] and "@odata.deltaLink" in quiet


def test_groups_delta_carries_member_changes(emu: Emulator) -> None:
    tenant = tenant_of(emu, CUSTOMER_DOMAIN)
    group = next(iter(tenant.objects["groups"].values()))
    leaving = group["_members"][0]
    joining = next(u for u in tenant.objects["users"] if u not in group["_members"])
    with graph_client(emu, app_token(emu)) as graph:
        pages, delta_link = delta_round(graph, "/v1.0/groups/delta")
        first = next(g for g in items(pages) if g["id"] == group["id"])
        assert {m["id"] for m in first["members@delta"]} == set(group["_members"])
        with control_client(emu) as control:
            members = f"/tenants/{CUSTOMER_DOMAIN}/groups/{group['id']}/members"
            assert control.post(members, json={"id": joining}).json() == {"changed": True}
            assert control.request("DELETE", members, json={"id": leaving}).json() == {
                "changed": True
            }
        changes, _ = delta_round(graph, delta_link)
    changed = {g["id"]: g for g in items(changes)}
    assert set(changed) == {group["id"]}
    assert sorted(changed[group["id"]]["members@delta"], key=lambda m: m["id"]) == sorted(
        [
            {"@odata.type": "#microsoft.graph.user", "id": joining},
            {
                "@odata.type": "#microsoft.graph.user",
                "id": leaving,
                "@removed": {"reason": "deleted"},
            },
        ],
        key=lambda m: m["id"],
    )


@pytest.mark.parametrize(
    "path",
    ["/v1.0/devices/delta", "/v1.0/devices/delta()", "/v1.0/devices/microsoft.graph.delta()"],
)
def test_devices_delta_in_every_spelling(emulator: Emulator, path: str) -> None:
    tenant = tenant_of(emulator, CUSTOMER_DOMAIN)
    with graph_client(emulator, app_token(emulator)) as graph:
        pages, delta_link = delta_round(graph, path)
    assert {d["id"] for d in items(pages)} == set(tenant.objects["devices"])
    assert "$deltatoken=" in delta_link


def test_sync_from_now_with_latest(emu: Emulator) -> None:
    with graph_client(emu, app_token(emu)) as graph:
        now = graph.get("/v1.0/users/delta", params={"$deltatoken": "latest"}).json()
        assert now["value"] == [] and "@odata.deltaLink" in now
        with control_client(emu) as control:
            control.post(
                f"/tenants/{CUSTOMER_DOMAIN}/users", json={"userPrincipalName": "x@customer.com"}
            )
        changes, _ = delta_round(graph, now["@odata.deltaLink"])
    assert [u["userPrincipalName"] for u in items(changes)] == ["x@customer.com"]


def test_delta_tokens_expire_after_seven_days(emu: Emulator) -> None:
    with graph_client(emu, app_token(emu, lifetime=30 * 86400)) as graph:
        _, delta_link = delta_round(graph, "/v1.0/users/delta")
        emu.advance(7 * 86400 + 1)
        response = graph.get(delta_link)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "syncStateNotFound"
    assert error["message"].startswith("The sync state generation is not found.")


def test_tokens_not_issued_for_this_query_are_refused(emu: Emulator) -> None:
    with graph_client(emu, app_token(emu)) as graph:
        _, users_link = delta_round(graph, "/v1.0/users/delta")
        token = users_link.split("$deltatoken=", 1)[1]
        garbage = graph.get("/v1.0/users/delta", params={"$deltatoken": "garbage"})
        other_resource = graph.get(f"/v1.0/groups/delta?$deltatoken={token}")
    with graph_client(emu, app_token(emu, "other.com")) as other:
        other_tenant = other.get(f"/v1.0/users/delta?$deltatoken={token}")
    for response in (garbage, other_resource, other_tenant):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "Request_BadRequest"
