"""The latency model over real sockets: every answer waits base + per-object time with jitter and
a slow tail, asynchronously, and the emulator records the wait it applied (docs/emulator.md,
"Latency"). No test measures time: the waits are read back from the emulator's own record, and
"asynchronous" is shown by ordering (answers come while other requests still wait)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx
import pytest

from csp_emulator.latency import OBJECTS_HEADER, PRESETS
from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import WorldFileError, load_world_data
from tests.conftest import MakeEmulator
from tests.emulator.graph_tokens import (
    CUSTOMER_DOMAIN,
    PARTNER_DOMAIN,
    app_token,
    control_client,
    graph_client,
    graph_world,
    tenant_of,
)
from tests.emulator.test_partner_center import token as partner_center_token


def latency_world(**latency: Any) -> dict[str, Any]:
    return graph_world(latency=latency)


def applied(emu: Emulator, after: int = 0) -> list[dict[str, Any]]:
    with control_client(emu) as control:
        response = control.get("/latency/log", params={"after": after, "limit": 100_000})
    assert response.status_code == 200, response.text
    records: list[dict[str, Any]] = response.json()["value"]
    return records


def test_each_answer_waits_base_plus_per_object_time_and_the_wait_is_recorded(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator(latency_world(graph={"base": 0.01, "per_object": 0.0005}))
    customer = tenant_of(emu, CUSTOMER_DOMAIN)
    with graph_client(emu, app_token(emu)) as graph:
        page = graph.get("/v1.0/users/delta?$select=displayName")
        organization = graph.get("/v1.0/organization")
    assert page.status_code == 200 and organization.status_code == 200
    # The host's count travels to the latency model inside the emulator, never to the client.
    assert OBJECTS_HEADER not in page.headers
    first, second = applied(emu)
    assert first["host"] == "graph" and first["tenant"] == customer.id
    assert (first["method"], first["path"], first["status"]) == ("GET", "/v1.0/users/delta", 200)
    assert first["objects"] == len(page.json()["value"]) == 200
    assert first["seconds"] == pytest.approx(0.01 + 200 * 0.0005)
    assert second["objects"] == 1 and second["seconds"] == pytest.approx(0.0105)
    assert not first["slow"] and not second["slow"]
    assert second["seq"] == first["seq"] + 1


def test_members_at_delta_count_as_objects_of_a_groups_page(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(latency_world(graph={"per_object": 0.0001}))
    with graph_client(emu, app_token(emu)) as graph:
        body = graph.get("/v1.0/groups/delta?$select=displayName,members").json()
    links = sum(len(g.get("members@delta", ())) for g in body["value"])
    assert links > 0
    (record,) = applied(emu)
    assert record["objects"] == len(body["value"]) + links


def test_jitter_stays_in_its_band_and_a_share_of_answers_is_slow(
    make_emulator: MakeEmulator,
) -> None:
    model = {"base": 0.002, "jitter": 0.5, "tail_share": 0.3, "tail_factor": 10}
    emu = make_emulator(latency_world(graph=model))
    with graph_client(emu, app_token(emu)) as graph:
        for _ in range(60):
            assert graph.get("/v1.0/organization").status_code == 200
    records = applied(emu)
    slow = [r for r in records if r["slow"]]
    normal = [r for r in records if not r["slow"]]
    assert slow and normal  # 60 draws at 30 %: both kinds (fixed seed, so always the same ones)
    assert all(0.001 <= r["seconds"] <= 0.003 for r in normal)
    assert all(0.01 <= r["seconds"] <= 0.03 for r in slow)
    assert len({round(r["seconds"], 9) for r in normal}) > 1  # jittered, not constant


def test_the_same_requests_meet_the_same_waits_after_a_reset(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(latency_world(graph={"base": 0.001, "jitter": 0.5, "tail_share": 0.2}))

    def waits() -> list[float]:
        token = app_token(emu)
        with graph_client(emu, token) as graph:
            for _ in range(10):
                graph.get("/v1.0/organization")
        return [r["seconds"] for r in applied(emu)]

    first = waits()
    with control_client(emu) as control:
        assert control.post("/reset").status_code == 200
    assert waits() == first


async def test_waits_are_asynchronous_other_answers_come_while_requests_wait(
    make_emulator: MakeEmulator,
) -> None:
    # Graph takes 30 s an answer, sign-in nothing: two Graph requests are both waiting (each
    # recorded as it starts to wait) while a sign-in request is answered.
    emu = make_emulator(latency_world(graph={"base": 30}))
    context = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)
    headers = {"Authorization": f"Bearer {app_token(emu)}"}
    async with httpx.AsyncClient(verify=context, base_url=emu.endpoints.graph) as graph:
        waiting = [
            asyncio.create_task(graph.get("/v1.0/organization", headers=headers)) for _ in range(2)
        ]
        for _ in range(3000):  # polling the record until both wait, not timing anything
            if len(applied(emu)) == 2:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the two Graph requests never started to wait")
        async with httpx.AsyncClient(verify=context) as login:
            answer = await login.get(
                f"{emu.endpoints.authority_host}/{CUSTOMER_DOMAIN}/v2.0/.well-known/openid-configuration"
            )
        assert answer.status_code == 200
        assert not any(task.done() for task in waiting)
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
    assert [(r["host"], r["seconds"]) for r in applied(emu)] == [("graph", 30.0), ("graph", 30.0)]


def test_sign_in_and_partner_center_waits_name_their_tenant(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(
        latency_world(login={"base": 0.001}, partner_center={"base": 0.001, "per_object": 0.001})
    )
    context = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)
    with httpx.Client(verify=context) as http:
        discovery = http.get(
            f"{emu.endpoints.authority_host}/{CUSTOMER_DOMAIN}/v2.0/.well-known/openid-configuration"
        )
        customers = http.get(
            emu.endpoints.partner_center + "/v1/customers?size=2",
            headers={"Authorization": f"Bearer {partner_center_token(emu, PARTNER_DOMAIN)}"},
        )
    assert discovery.status_code == 200 and customers.status_code == 200
    login, center = applied(emu)
    assert (login["host"], login["tenant"]) == ("login", tenant_of(emu, CUSTOMER_DOMAIN).id)
    assert (center["host"], center["tenant"]) == (
        "partner_center",
        tenant_of(emu, PARTNER_DOMAIN).id,
    )
    assert center["objects"] == len(customers.json()["items"]) == 2
    assert center["seconds"] == pytest.approx(0.003)
    assert OBJECTS_HEADER not in customers.headers


def test_errors_wait_too_and_a_host_without_latency_records_nothing(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator(latency_world(graph={"base": 0.001}))
    with graph_client(emu, None) as graph:
        assert graph.get("/v1.0/users").status_code == 401
    context = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)
    with httpx.Client(verify=context) as http:
        http.get(f"{emu.endpoints.authority_host}/common/discovery/instance")
    ((host, status),) = [(r["host"], r["status"]) for r in applied(emu)]
    assert (host, status) == ("graph", 401)


def test_the_log_pages_and_can_be_cleared(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(latency_world(graph={"base": 0.0001}))
    with graph_client(emu, app_token(emu)) as graph:
        for _ in range(5):
            graph.get("/v1.0/organization")
    with control_client(emu) as control:
        first = control.get("/latency/log", params={"limit": 3}).json()
        assert [r["seq"] for r in first["value"]] == [1, 2, 3] and first["more"]
        rest = control.get("/latency/log", params={"after": first["next_after"]}).json()
        assert [r["seq"] for r in rest["value"]] == [4, 5] and not rest["more"]
        assert control.get("/latency/log", params={"limit": "many"}).status_code == 400
        assert control.delete("/latency/log").status_code == 204
        assert control.get("/latency/log").json()["value"] == []


def test_the_realistic_preset_from_a_world_file_and_changes_through_the_control_api(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator(latency_world(preset="realistic", login={"base": 0.5}))
    with control_client(emu) as control:
        settings = control.get("/settings").json()["latency"]
        assert settings["graph"] == {
            "base": PRESETS["realistic"]["graph"].base,
            "per_object": PRESETS["realistic"]["graph"].per_object,
            "jitter": PRESETS["realistic"]["graph"].jitter,
            "tail_share": PRESETS["realistic"]["graph"].tail_share,
            "tail_factor": PRESETS["realistic"]["graph"].tail_factor,
        }
        assert settings["login"]["base"] == 0.5 and settings["preset"] is None  # changed by hand
        changed = control.put("/settings", json={"latency": {"graph": {"base": 0.25}}})
        assert changed.status_code == 200
        latency = changed.json()["latency"]
        assert latency["graph"]["base"] == 0.25
        assert latency["graph"]["per_object"] == PRESETS["realistic"]["graph"].per_object
        assert latency["login"]["base"] == 0.5
        off = control.put("/settings", json={"latency": {"preset": "off"}}).json()["latency"]
        assert off["preset"] == "off" and off["graph"]["base"] == 0.0
        for bad in (
            {"preset": "fast"},
            {"graph": {"base": -1}},
            {"graph": {"jitter": 1.5}},
            {"graph": {"tail_factor": 0.5}},
            {"dns": {"base": 1}},
            {"graph": {"delay": 1}},
        ):
            refused = control.put("/settings", json={"latency": bad})
            assert refused.status_code == 400, bad
            assert "latency" in refused.json()["error"]
        assert control.get("/settings").json()["latency"]["preset"] == "off"
    # With latency off, nothing is recorded.
    with graph_client(emu, app_token(emu)) as graph:
        graph.get("/v1.0/organization")
    assert applied(emu) == []


def test_a_bad_latency_figure_in_a_world_file_is_refused_by_name() -> None:
    with pytest.raises(WorldFileError, match=r"settings\.latency\.graph\.jitter: .*less than"):
        load_world_data(latency_world(graph={"jitter": 2}), source="w.toml")
    with pytest.raises(WorldFileError, match=r"settings\.latency\.preset"):
        load_world_data(latency_world(preset="fast"), source="w.toml")
