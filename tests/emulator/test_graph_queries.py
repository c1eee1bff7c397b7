"""OData query options over HTTPS: $filter, $select, $top, $orderby, $count, $search, $expand, and
the ConsistencyLevel rules of advanced queries (wire-facts §2.4)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from csp_emulator.server import Emulator
from tests.emulator.graph_tokens import (
    CUSTOMER_DOMAIN,
    all_pages,
    app_token,
    graph_client,
    tenant_of,
)

EVENTUAL = {"ConsistencyLevel": "eventual"}


@pytest.fixture(scope="module")
def graph(emulator: Emulator) -> Any:
    with graph_client(emulator, app_token(emulator)) as client:
        yield client


def users(emulator: Emulator) -> list[dict[str, Any]]:
    return list(tenant_of(emulator, CUSTOMER_DOMAIN).objects["users"].values())


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


def test_filter_eq_startswith_and_in(emulator: Emulator, graph: httpx.Client) -> None:
    everyone = users(emulator)
    someone = everyone[3]
    by_upn = graph.get(
        "/v1.0/users", params={"$filter": f"userPrincipalName eq '{someone['userPrincipalName']}'"}
    )
    assert [u["id"] for u in by_upn.json()["value"]] == [someone["id"]]
    prefix = someone["displayName"][:2]
    starting = graph.get("/v1.0/users", params={"$filter": f"startswith(displayName,'{prefix}')"})
    assert {u["id"] for u in starting.json()["value"]} == {
        u["id"] for u in everyone if u["displayName"].lower().startswith(prefix.lower())
    }
    two = [everyone[0]["id"], everyone[1]["id"]]
    chosen = graph.get("/v1.0/users", params={"$filter": f"id in ('{two[0]}','{two[1]}')"})
    assert sorted(u["id"] for u in chosen.json()["value"]) == sorted(two)


@pytest.mark.parametrize(
    ("expression", "code"),
    [
        ("accountEnabled ne true", "Request_UnsupportedQuery"),  # ne needs advanced mode
        ("endswith(mail,'@customer.com')", "Request_UnsupportedQuery"),
        ("displayName eq", "BadRequest"),  # syntax
        ("favouriteColour eq 'blue'", "BadRequest"),  # no such property
        ("accountEnabled eq 'true'", "BadRequest"),  # type mismatch
    ],
)
def test_filter_errors_come_back_in_graph_shape(
    graph: httpx.Client, expression: str, code: str
) -> None:
    status, got_code, message = error_of(graph.get("/v1.0/users", params={"$filter": expression}))
    assert (status, got_code) == (400, code) and message


def test_advanced_filter_works_with_consistency_level_and_count(
    emulator: Emulator, graph: httpx.Client
) -> None:
    params = {"$filter": "endswith(mail,'@customer.com')", "$count": "true"}
    response = graph.get("/v1.0/users", params=params, headers=EVENTUAL)
    expected = [u for u in users(emulator) if u["mail"].lower().endswith("@customer.com")]
    assert response.status_code == 200
    assert response.json()["@odata.count"] == len(expected) == len(response.json()["value"])


def test_count_true_without_the_header_is_silently_ignored(graph: httpx.Client) -> None:
    response = graph.get("/v1.0/users", params={"$count": "true"})
    assert response.status_code == 200 and "@odata.count" not in response.json()


def test_count_only_on_the_first_page(emulator: Emulator, graph: httpx.Client) -> None:
    pages = all_pages(graph, "/v1.0/users?$count=true&$top=5", headers=EVENTUAL)
    assert pages[0]["@odata.count"] == len(users(emulator))
    assert len(pages) > 1 and all("@odata.count" not in p for p in pages[1:])


def test_dollar_count_segment_needs_the_header_and_is_text(
    emulator: Emulator, graph: httpx.Client
) -> None:
    refused = graph.get("/v1.0/users/$count")
    assert error_of(refused) == (400, "Request_BadRequest", "$count is not currently supported.")
    counted = graph.get("/v1.0/users/$count", headers=EVENTUAL)
    assert counted.status_code == 200
    assert counted.headers["content-type"].startswith("text/plain")
    assert counted.text == str(len(users(emulator)))
    enabled = graph.get(
        "/v1.0/users/$count", params={"$filter": "accountEnabled ne false"}, headers=EVENTUAL
    )
    assert enabled.text == str(sum(1 for u in users(emulator) if u["accountEnabled"]))


def test_search_needs_consistency_level(emulator: Emulator, graph: httpx.Client) -> None:
    refused = graph.get("/v1.0/users", params={"$search": '"displayName:Admin"'})
    status, code, message = error_of(refused)
    assert (status, code) == (400, "Request_UnsupportedQuery")
    assert "ConsistencyLevel: eventual" in message
    found = graph.get("/v1.0/users", params={"$search": '"displayName:Admin"'}, headers=EVENTUAL)
    assert [u["displayName"] for u in found.json()["value"]] == ["Admin"]


@pytest.mark.parametrize(
    ("top", "code"), [("1000", "Request_UnsupportedQuery"), ("0", "Request_UnsupportedQuery")]
)
def test_top_limits(graph: httpx.Client, top: str, code: str) -> None:
    status, got, message = error_of(graph.get("/v1.0/users", params={"$top": top}))
    assert (status, got) == (400, code)
    assert message == f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."


def test_top_sets_the_page_size(emulator: Emulator, graph: httpx.Client) -> None:
    pages = all_pages(graph, "/v1.0/users?$top=4")
    assert [len(p["value"]) for p in pages][:-1] == [4] * (len(pages) - 1)
    assert sum(len(p["value"]) for p in pages) == len(users(emulator))


def test_select_shapes_items_and_context(graph: httpx.Client) -> None:
    body = graph.get("/v1.0/users", params={"$select": "displayName,accountEnabled"}).json()
    assert body["@odata.context"].endswith("#users(displayName,accountEnabled)")
    assert set(body["value"][0]) - {"id"} == {"displayName", "accountEnabled"}
    bad = graph.get("/v1.0/users", params={"$select": "shoeSize"})
    assert error_of(bad)[:2] == (400, "BadRequest")


def test_orderby_plain_and_with_filter(emulator: Emulator, graph: httpx.Client) -> None:
    ordered = graph.get("/v1.0/users", params={"$orderby": "displayName desc"}).json()["value"]
    names = [u["displayName"].casefold() for u in ordered]
    assert names == sorted(names, reverse=True)
    mixed = graph.get(
        "/v1.0/users", params={"$orderby": "displayName", "$filter": "accountEnabled eq true"}
    )
    assert error_of(mixed) == (
        400,
        "Request_UnsupportedQuery",
        "Sorting not supported for current query.",
    )
    advanced = graph.get(
        "/v1.0/users",
        params={"$orderby": "displayName", "$filter": "accountEnabled eq true", "$count": "true"},
        headers=EVENTUAL,
    )
    assert advanced.status_code == 200


def test_orderby_paging_resumes_after_the_last_object(graph: httpx.Client) -> None:
    pages = all_pages(graph, "/v1.0/users?$orderby=userPrincipalName&$top=5")
    upns = [u["userPrincipalName"].casefold() for p in pages for u in p["value"]]
    assert upns == sorted(upns) and len(upns) == len(set(upns))


def test_expand_members_on_groups(emulator: Emulator, graph: httpx.Client) -> None:
    tenant = tenant_of(emulator, CUSTOMER_DOMAIN)
    group = next(g for g in tenant.objects["groups"].values() if g["_members"])
    body = graph.get(f"/v1.0/groups/{group['id']}", params={"$expand": "members"}).json()
    assert {m["id"] for m in body["members"]} == set(group["_members"][:20])
    assert all(m["@odata.type"] == "#microsoft.graph.user" for m in body["members"])
    unknown = graph.get("/v1.0/groups", params={"$expand": "owners"})
    assert error_of(unknown)[:2] == (400, "BadRequest")
    advanced = graph.get(
        "/v1.0/groups", params={"$expand": "members", "$count": "true"}, headers=EVENTUAL
    )
    assert error_of(advanced)[:2] == (400, "Request_UnsupportedQuery")


def test_skip_is_not_supported_on_directory_lists(graph: httpx.Client) -> None:
    response = graph.get("/v1.0/users", params={"$skip": "5"})
    assert error_of(response) == (
        400,
        "Request_BadRequest",
        "'$skip' is not supported by the service.",
    )


def test_a_skiptoken_we_did_not_issue_is_refused(graph: httpx.Client) -> None:
    response = graph.get("/v1.0/users", params={"$skiptoken": "not-a-token"})
    assert error_of(response)[:2] == (400, "Request_BadRequest")
