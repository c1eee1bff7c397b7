"""The throttling scales, over HTTPS: ``scale`` shrinks Graph's budgets and nothing else;
``partner_center_scale`` shrinks Partner Center's customer-endpoint limit; bad values are refused
by name, in the world file and in the control API."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import WorldFileError, load_world_data
from tests.conftest import MakeEmulator, tls

APP = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "s3cret"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
PC_SCOPE = "https://api.partnercenter.microsoft.com/.default"
POSITIVE = "must be a positive number"


def world(**throttling: Any) -> dict[str, Any]:
    return {
        "settings": {"throttling": throttling},
        "tenant": [
            {
                "domain": "partner.com",
                "kind": "partner",
                "app": [
                    {
                        "display_name": "CSP app",
                        "client_id": APP,
                        "client_secret": SECRET,
                        "admin_agents": True,
                        "application_permissions": ["User.Read.All"],
                    }
                ],
            },
            {"domain": "customer.com", "partner": "partner.com"},
        ],
    }


class Calls:
    """One partner app's calls to Graph (in customer.com) and to Partner Center."""

    def __init__(self, emu: Emulator, http: httpx.Client) -> None:
        self.emu = emu
        self.http = http
        self.graph_token = self._token("customer.com", GRAPH_SCOPE)
        self.pc_token = self._token("partner.com", PC_SCOPE)

    def _token(self, tenant: str, scope: str) -> str:
        response = self.http.post(
            f"{self.emu.endpoints.authority_host}/{tenant}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": APP,
                "client_secret": SECRET,
                "scope": scope,
            },
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def graph_users(self) -> httpx.Response:  # 2 RU
        return self.http.get(
            self.emu.endpoints.graph + "/v1.0/users",
            headers={"Authorization": f"Bearer {self.graph_token}"},
        )

    def pc_customers(self) -> httpx.Response:
        return self.http.get(
            self.emu.endpoints.partner_center + "/v1/customers",
            params={"size": 1},
            headers={"Authorization": f"Bearer {self.pc_token}", "Accept": "application/json"},
        )


@contextmanager
def calls(emu: Emulator) -> Iterator[Calls]:
    with httpx.Client(verify=tls(emu), timeout=10) as http:
        yield Calls(emu, http)


def test_scaling_graph_leaves_partner_center_at_its_published_limit(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator(world(scale=0.001))  # a small tenant's Graph budget: 3.5 RU per 10 s
    with calls(emu) as c:
        assert c.graph_users().status_code == 200
        assert c.graph_users().status_code == 429  # Graph's budget is scaled
        # 500 a minute stays 500 a minute: at Graph's scale it would be 1 (0.5, clamped).
        statuses = {c.pc_customers().status_code for _ in range(25)}
    assert statuses == {200}
    assert emu.world.settings.throttling.partner_center_scale == 1.0


def test_partner_center_scale_scales_partner_center_and_not_graph(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator(world(partner_center_scale=0.01))  # 5 requests a minute
    with calls(emu) as c:
        for _ in range(5):
            assert c.pc_customers().status_code == 200
        refused = c.pc_customers()
        graph = [c.graph_users().status_code for _ in range(25)]  # 50 RU of 3,500
    assert refused.status_code == 429
    seconds = int(refused.headers["retry-after"])
    assert 1 <= seconds <= 72
    assert refused.json()["message"] == f"Rate limit is exceeded. Try again in {seconds} seconds."
    assert set(graph) == {200}
    emu.advance(seconds)
    with calls(emu) as c:
        assert c.pc_customers().status_code == 200


def test_partner_center_scale_is_changed_at_run_time(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(world())
    with httpx.Client(verify=tls(emu), base_url=emu.endpoints.control + "/_emulator") as control:
        changed = control.put(
            "/settings", json={"throttling": {"scale": 0.5, "partner_center_scale": 0.004}}
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["throttling"] == {
            "enabled": True,
            "scale": 0.5,
            "partner_center_scale": 0.004,
            "window_scale": 1.0,
        }
        # A key left out keeps its value.
        again = control.put("/settings", json={"throttling": {"scale": 0.25}}).json()
        assert again["throttling"]["partner_center_scale"] == 0.004
    with calls(emu) as c:  # 2 requests a minute
        assert [c.pc_customers().status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize("key", ["scale", "partner_center_scale", "window_scale"])
@pytest.mark.parametrize(
    ("value", "why"),
    [
        (0, "greater than 0"),
        (-1.5, "greater than 0"),
        ("0.5", "a valid number"),
        (True, "a valid number"),
        (math.inf, "a finite number"),
        (math.nan, "a finite number"),
    ],
)
def test_world_file_refuses_bad_scales_by_name(key: str, value: object, why: str) -> None:
    with pytest.raises(WorldFileError) as info:
        load_world_data(world(**{key: value}), source="w.toml")
    assert str(info.value).startswith(f"w.toml: settings.throttling.{key}: ")
    assert why in str(info.value)


def test_world_file_names_a_misspelt_throttling_key() -> None:
    with pytest.raises(WorldFileError) as info:
        load_world_data(world(partner_centre_scale=0.5), source="w.toml")
    assert "settings.throttling.partner_centre_scale: unknown key" in str(info.value)


@pytest.mark.parametrize(
    ("throttling", "named"),
    [
        ({"partner_center_scale": 0}, f"throttling.partner_center_scale {POSITIVE}"),
        ({"partner_center_scale": -2}, f"throttling.partner_center_scale {POSITIVE}"),
        ({"partner_center_scale": "x"}, f"throttling.partner_center_scale {POSITIVE}"),
        ({"partner_center_scale": True}, f"throttling.partner_center_scale {POSITIVE}"),
        ({"scale": 0}, f"throttling.scale {POSITIVE}"),
        ({"scale": None}, f"throttling.scale {POSITIVE}"),
        ({"window_scale": 0}, f"throttling.window_scale {POSITIVE}"),
        ({"enabled": "no"}, "throttling.enabled must be true or false"),
        ({"pc_scale": 0.5}, "partner_center_scale"),  # the message lists the keys it takes
    ],
)
def test_control_api_refuses_bad_scales_and_changes_nothing(
    emulator: Emulator, throttling: dict[str, Any], named: str
) -> None:
    before = emulator.world.settings.throttling
    snapshot = dataclasses.astuple(before)
    body = {"throttling": {"scale": 0.5, **throttling}}  # a good value beside the bad one
    with httpx.Client(verify=tls(emulator), base_url=emulator.endpoints.control) as control:
        refused = control.put("/_emulator/settings", json=body)
    assert refused.status_code == 400
    assert named in refused.json()["error"]
    after = emulator.world.settings.throttling
    assert dataclasses.astuple(after) == snapshot
