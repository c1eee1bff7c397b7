"""Delta page sizes as Graph pages them: at most 200 objects and 500 ``members@delta`` entries a
page whatever the client prefers, a big group spread over several pages, groups pages that
shrink and recover (docs/emulator.md, "Delta pages")."""

from __future__ import annotations

from typing import Any

import pytest

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import WorldFileError, load_world_data
from tests.conftest import MakeEmulator
from tests.emulator.graph_tokens import (
    CUSTOMER_DOMAIN,
    all_pages,
    app_token,
    control_client,
    graph_client,
    graph_world,
    tenant_of,
)


def world(users: int = 240, groups: int = 5, **settings: Any) -> dict[str, Any]:
    data = graph_world(**settings)
    customer = next(t for t in data["tenant"] if t["domain"] == CUSTOMER_DOMAIN)
    customer["generate"] = {**customer["generate"], "users": users, "groups": groups}
    return data


def sizes(pages: list[dict[str, Any]]) -> list[int]:
    return [len(page["value"]) for page in pages]


def ids(pages: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for page in pages for item in page["value"]]


@pytest.mark.parametrize(
    ("prefer", "expected"),
    [
        (None, [200, 42]),
        ("odata.maxpagesize=999", [200, 42]),
        ("odata.maxpagesize=100", [100] * 2 + [42]),
    ],
)
def test_users_delta_pages_hold_at_most_200_users_whatever_the_client_prefers(
    make_emulator: MakeEmulator, prefer: str | None, expected: list[int]
) -> None:
    emu = make_emulator(world())
    everyone = sorted(tenant_of(emu, CUSTOMER_DOMAIN).objects["users"])
    assert len(everyone) == 242  # 240 generated, the helpdesk user and admin@
    headers = {"Prefer": prefer} if prefer else {}
    with graph_client(emu, app_token(emu), **headers) as graph:
        pages = all_pages(graph, "/v1.0/users/delta?$select=displayName")
    assert sizes(pages) == expected
    assert ids(pages) == everyone
    assert "@odata.deltaLink" in pages[-1]


def test_a_group_with_more_members_than_a_page_holds_comes_back_on_the_next_pages(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator(world(users=1300, groups=3, delta={"groups_shrink": 1.0}))
    tenant = tenant_of(emu, CUSTOMER_DOMAIN)
    users = sorted(tenant.objects["users"])

    def fill() -> str:
        group = sorted(tenant.objects["groups"])[1]
        for user in users[:1200]:
            tenant.add_member(group, user)
        return group

    big = emu.call(fill)
    expected = {g: set(group["_members"]) for g, group in tenant.objects["groups"].items()}
    assert len(expected[big]) >= 1200
    with graph_client(emu, app_token(emu)) as graph:
        pages = all_pages(graph, "/v1.0/groups/delta?$select=displayName,members")
    links = [sum(len(g.get("members@delta", ())) for g in page["value"]) for page in pages]
    assert max(links) == 500  # pages filled up to the cap, never past it
    got: dict[str, list[str]] = {}
    for page in pages:
        for group in page["value"]:
            assert group["displayName"] == tenant.objects["groups"][group["id"]]["displayName"]
            got.setdefault(group["id"], []).extend(m["id"] for m in group["members@delta"])
    # Every member exactly once, the big group on at least three pages in a row.
    assert {g: set(m) for g, m in got.items()} == expected
    assert all(len(m) == len(set(m)) for m in got.values())
    appearances = [i for i, page in enumerate(pages) for g in page["value"] if g["id"] == big]
    assert len(appearances) >= 3
    assert appearances == list(range(appearances[0], appearances[0] + len(appearances)))


def test_a_split_group_resumes_after_the_last_member_sent_even_when_members_change_between_pages(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator(world(users=1300, groups=1, delta={"groups_shrink": 1.0, "link_cap": 300}))
    tenant = tenant_of(emu, CUSTOMER_DOMAIN)
    (group,) = tenant.objects["groups"]
    with graph_client(emu, app_token(emu)) as graph:
        first = graph.get("/v1.0/groups/delta?$select=displayName,members").json()
        sent = [m["id"] for m in first["value"][0]["members@delta"]]
        assert len(sent) == 300 and "@odata.nextLink" in first
        # A member already sent leaves; the rest of the round must not skip anybody for it.
        emu.call(lambda: tenant.remove_member(group, sent[0]))
        rest = all_pages(graph, first["@odata.nextLink"])
        later = [m["id"] for page in rest for g in page["value"] for m in g["members@delta"]]
        delta_link = rest[-1]["@odata.deltaLink"]
        assert set(sent) | set(later) == set(tenant.objects["groups"][group]["_members"]) | {
            sent[0]
        }
        assert not set(sent) & set(later)
        # The removal comes in the next round.
        (changed,) = graph.get(delta_link).json()["value"]
    assert changed["members@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": sent[0], "@removed": {"reason": "deleted"}}
    ]


def test_groups_pages_shrink_towards_one_group_and_then_recover(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator(world(users=450, groups=600))
    everyone = sorted(tenant_of(emu, CUSTOMER_DOMAIN).objects["groups"])
    with graph_client(emu, app_token(emu)) as graph:
        pages = all_pages(graph, "/v1.0/groups/delta?$select=displayName")
        # Half the previous page each time, four pages of one group, then 200 again.
        assert sizes(pages) == [200, 100, 50, 25, 12, 6, 3, 1, 1, 1, 1, 200]
        assert ids(pages) == everyone
        # Users pages never shrink.
        users = all_pages(graph, "/v1.0/users/delta?$select=displayName")
    assert sizes(users) == [200, 200, 52]


def test_the_control_api_changes_the_delta_caps_and_refuses_a_bad_one(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator(world())
    with control_client(emu) as control:
        changed = control.put("/settings", json={"delta": {"object_cap": 100, "groups_shrink": 1}})
        assert changed.status_code == 200, changed.text
        assert changed.json()["delta"] == {
            "object_cap": 100, "link_cap": 500, "groups_shrink": 1, "groups_floor_pages": 4
        }  # fmt: skip
        for bad in ({"object_cap": 0}, {"groups_shrink": 1.5}, {"link_cap": "many"}, {"cap": 1}):
            refused = control.put("/settings", json={"delta": bad})
            assert refused.status_code == 400
            assert "delta" in refused.json()["error"]
        assert control.get("/settings").json()["delta"]["object_cap"] == 100
    with graph_client(emu, app_token(emu), Prefer="odata.maxpagesize=999") as graph:
        pages = all_pages(graph, "/v1.0/users/delta?$select=displayName")
    assert sizes(pages) == [100, 100, 42]


def test_a_world_file_sets_the_delta_caps(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(world(delta={"object_cap": 50}))
    with graph_client(emu, app_token(emu)) as graph:
        pages = all_pages(graph, "/v1.0/devices/delta")
    assert sizes(pages) == [12]
    with graph_client(emu, app_token(emu)) as graph:
        users = all_pages(graph, "/v1.0/users/delta?$select=displayName")
    assert sizes(users) == [50] * 4 + [42]


def test_the_delta_link_starts_the_next_round_at_the_full_cap(
    emulator_with_groups: Emulator,
) -> None:
    # A round that ended on a shrunken cap must not hand the shrinking on to the next round.
    tenant = tenant_of(emulator_with_groups, CUSTOMER_DOMAIN)
    with graph_client(emulator_with_groups, app_token(emulator_with_groups)) as graph:
        pages = all_pages(graph, "/v1.0/groups/delta?$select=displayName")
        assert sizes(pages)[-1] < 200
        everyone = sorted(tenant.objects["groups"])
        emulator_with_groups.call(
            lambda: [tenant.update("groups", g, {"description": "x"}) for g in everyone]
        )
        again = all_pages(graph, pages[-1]["@odata.deltaLink"])
    assert sizes(again)[:2] == [200, 100]


@pytest.fixture
def emulator_with_groups(make_emulator: MakeEmulator) -> Emulator:
    return make_emulator(world(users=30, groups=390))


def test_a_client_page_size_below_the_cap_still_shrinks_for_groups(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator(world(users=30, groups=40))
    with graph_client(emu, app_token(emu), Prefer="odata.maxpagesize=16") as graph:
        pages = all_pages(graph, "/v1.0/groups/delta?$select=displayName")
    assert sizes(pages) == [16, 8, 4, 2, 1, 1, 1, 1, 6]


def test_a_world_file_with_a_bad_delta_cap_is_refused_by_name() -> None:
    with pytest.raises(
        WorldFileError, match=r"settings\.delta\.link_cap: .*greater than or equal to 1"
    ):
        load_world_data(world(delta={"link_cap": 0}), source="w.toml")
