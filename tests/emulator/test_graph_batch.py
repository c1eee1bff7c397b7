"""JSON batching (wire-facts §2.6) and throttling (§3): each batch item is routed, authorized,
scoped and throttled on its own; a throttled item is a 429 with its own Retry-After."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator
from tests.emulator.graph_tokens import (
    CUSTOMER_DOMAIN,
    app_token,
    graph_client,
    graph_world,
    tenant_of,
)


def batch(graph: httpx.Client, requests: list[dict[str, Any]]) -> httpx.Response:
    return graph.post("/v1.0/$batch", json={"requests": requests})


def by_id(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()["responses"]}


def test_a_batch_answers_every_item_by_id(emulator: Emulator) -> None:
    tenant = tenant_of(emulator, CUSTOMER_DOMAIN)
    with graph_client(emulator, app_token(emulator)) as graph:
        response = batch(
            graph,
            [
                {"id": "1", "method": "GET", "url": "/users?$select=id&$top=3"},
                {"id": "2", "method": "GET", "url": "organization"},
                {"id": "3", "method": "GET", "url": "/users/$count",
                 "headers": {"ConsistencyLevel": "eventual"}},
            ],
        )  # fmt: skip
    items = by_id(response)
    assert set(items) == {"1", "2", "3"}
    assert [items[i]["status"] for i in ("1", "2", "3")] == [200, 200, 200]
    assert len(items["1"]["body"]["value"]) == 3
    assert items["1"]["body"]["@odata.nextLink"].startswith(
        emulator.endpoints.graph + "/v1.0/users?"
    )
    assert items["1"]["headers"]["Content-Type"].startswith("application/json")
    assert items["2"]["body"]["value"][0]["id"] == tenant.id
    assert items["3"]["body"] == str(len(tenant.objects["users"]))
    # Graph promises no order; the emulator answers out of order on purpose.
    assert [item["id"] for item in response.json()["responses"]] != ["1", "2", "3"]


def test_items_are_authorized_and_scoped_one_by_one(emulator: Emulator) -> None:
    token = app_token(emulator, roles=["User.Read.All"])
    with graph_client(emulator, token) as graph:
        items = by_id(
            batch(
                graph,
                [
                    {"id": "users", "method": "GET", "url": "/users"},
                    {"id": "groups", "method": "GET", "url": "/groups"},
                    {"id": "sites", "method": "GET", "url": "/sites/root"},
                    {"id": "nonsense", "method": "GET", "url": "/nonsense"},
                ],
            )
        )
    assert items["users"]["status"] == 200
    assert (items["groups"]["status"], items["groups"]["body"]["error"]["code"]) == (
        403,
        "Authorization_RequestDenied",
    )
    assert (items["sites"]["status"], items["sites"]["body"]["error"]["code"]) == (
        403,
        "accessDenied",
    )
    assert items["nonsense"]["status"] == 400


def test_failed_dependencies_are_424_and_never_run(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(graph_world())
    tenant = tenant_of(emu, CUSTOMER_DOMAIN)
    before = len(tenant.objects["users"])
    create = {
        "accountEnabled": True, "displayName": "Never", "mailNickname": "never",
        "userPrincipalName": "never@customer.com", "passwordProfile": {"password": "Pa55-word!"},
    }  # fmt: skip
    with graph_client(emu, app_token(emu, roles=["User.ReadWrite.All"])) as graph:
        items = by_id(
            batch(
                graph,
                [
                    {"id": "1", "method": "GET", "url": "/users/no-such-user"},
                    {"id": "2", "method": "POST", "url": "/users", "dependsOn": ["1"],
                     "headers": {"Content-Type": "application/json"}, "body": create},
                    {"id": "3", "method": "GET", "url": "/organization", "dependsOn": ["2"]},
                    {"id": "4", "method": "GET", "url": "/users?$top=1"},
                ],
            )
        )  # fmt: skip
    assert [items[i]["status"] for i in ("1", "2", "3", "4")] == [404, 424, 424, 200]
    assert len(tenant.objects["users"]) == before  # item 2 did not run


def test_dependencies_run_first(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(graph_world())
    create = {
        "accountEnabled": True, "displayName": "Batch Made", "mailNickname": "batch.made",
        "userPrincipalName": "batch.made@customer.com", "passwordProfile": {"password": "Pa55!x"},
    }  # fmt: skip
    with graph_client(emu, app_token(emu, roles=["User.ReadWrite.All"])) as graph:
        items = by_id(
            batch(
                graph,
                [
                    {"id": "read", "method": "GET", "url": "/users/batch.made@customer.com",
                     "dependsOn": ["create"]},
                    {"id": "create", "method": "POST", "url": "/users",
                     "headers": {"Content-Type": "application/json"}, "body": create},
                ],
            )
        )  # fmt: skip
    assert items["create"]["status"] == 201
    assert items["read"]["status"] == 200
    assert items["read"]["body"]["id"] == items["create"]["body"]["id"]


@pytest.mark.parametrize(
    ("requests", "reason"),
    [
        ([{"id": str(i), "method": "GET", "url": "/users"} for i in range(21)], "over 20"),
        ([{"id": "a", "method": "GET", "url": "/users"},
          {"id": "A", "method": "GET", "url": "/groups"}], "duplicate id"),
        ([{"id": "1", "method": "POST", "url": "/users", "body": {}}], "body, no Content-Type"),
        ([{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}], "unknown dependency"),
        ([{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["2"]},
          {"id": "2", "method": "GET", "url": "/users", "dependsOn": ["1"]}], "cycle"),
    ],
)  # fmt: skip
def test_malformed_batches_are_refused_whole(
    emulator: Emulator, requests: list[dict[str, Any]], reason: str
) -> None:
    with graph_client(emulator, app_token(emulator)) as graph:
        response = batch(graph, requests)
    assert response.status_code == 400, reason
    assert response.json()["error"]["code"] == "BadRequest"


def test_a_throttled_item_gets_its_own_429_and_retry_after(make_emulator: MakeEmulator) -> None:
    # 0.001 of the published budget: a small tenant's 3,500 RU per 10 s becomes 3.5 RU.
    emu = make_emulator(graph_world(throttling={"enabled": True, "scale": 0.001}))
    requests = [{"id": str(i), "method": "GET", "url": "/organization"} for i in range(5)]
    with graph_client(emu, app_token(emu, "other.com")) as graph:
        items = by_id(batch(graph, requests))
        statuses = sorted(item["status"] for item in items.values())
        assert statuses == [200, 200, 200, 429, 429]
        throttled = [item for item in items.values() if item["status"] == 429]
        for item in throttled:
            assert float(item["headers"]["Retry-After"]) > 0
            assert item["body"]["error"]["code"] == "TooManyRequests"
        ok = next(item for item in items.values() if item["status"] == 200)
        assert ok["headers"]["x-ms-resource-unit"] == "1"

        # The same budget refuses a plain request, in Graph's 429 shape...
        refused = graph.get("/v1.0/organization")
        assert refused.status_code == 429
        wait = float(refused.headers["Retry-After"])
        assert refused.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
        assert refused.headers["x-ms-throttle-scope"].startswith("Tenant_Application/")
        inner = refused.json()["error"]["innerError"]
        assert (inner["code"], inner["status"]) == ("429", "429")
        # ...until the world clock has moved on by Retry-After.
        emu.advance(wait)
        assert graph.get("/v1.0/organization").status_code == 200
