"""Fault injection against the running emulator, over real sockets and TLS."""

from __future__ import annotations

import random
import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest

from csp_emulator.fault_injection import FaultMiddleware
from csp_emulator.faults import RNG_SEED
from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import load_world_data
from tests.conftest import MakeEmulator

WORLD: dict[str, Any] = {
    "tenant": [
        {"domain": "partner.com", "kind": "partner"},
        {"domain": "customer.com", "partner": "partner.com"},
    ]
}
TENANT = "customer.com"


def world_with_faults(*faults: dict[str, Any]) -> dict[str, Any]:
    return {**WORLD, "settings": {"fault": list(faults)}}


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    state = tmp_path_factory.mktemp("faults-emulator")
    with Emulator(lambda: load_world_data(WORLD), state_dir=state) as emulator:
        yield emulator


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    """A client for the shared emulator; the faults a test adds are cleared after it."""
    context = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)
    with httpx.Client(verify=context, timeout=10) as client:
        yield client
    with control_client(emu) as control:
        control.delete("/_emulator/faults")


def control_client(emu: Emulator) -> httpx.Client:
    context = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)
    return httpx.Client(verify=context, base_url=emu.endpoints.control, timeout=10)


def add_fault(emu: Emulator, **fault: Any) -> dict[str, Any]:
    with control_client(emu) as control:
        response = control.post("/_emulator/faults", json=fault)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def list_faults(emu: Emulator) -> list[dict[str, Any]]:
    with control_client(emu) as control:
        faults: list[dict[str, Any]] = control.get("/_emulator/faults").json()["value"]
    return faults


def graph_get(http: httpx.Client, emu: Emulator, path: str = "/v1.0/users") -> httpx.Response:
    return http.get(emu.endpoints.graph + path, headers={"client-request-id": "crid-1"})


def token_post(http: httpx.Client, emu: Emulator) -> httpx.Response:
    return http.post(
        f"{emu.endpoints.authority_host}/{TENANT}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
        headers={"client-request-id": "crid-2"},
    )


def customers_get(
    http: httpx.Client, emu: Emulator, path: str = "/v1/customers?size=1"
) -> httpx.Response:
    return http.get(
        emu.endpoints.partner_center + path,
        headers={"MS-CorrelationId": "11111111-1111-1111-1111-111111111111"},
    )


# -- 429 without Retry-After, in each host's own shape --------------------------------------------


def test_world_file_429_on_graph_fires_once(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(world_with_faults({"host": "graph", "kind": "429", "count": 1}))
    context = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)
    with httpx.Client(verify=context) as http:
        first = graph_get(http, emu)
        second = graph_get(http, emu)
    assert first.status_code == 429
    assert "retry-after" not in first.headers
    error = first.json()["error"]
    assert error["code"] == "TooManyRequests"
    assert error["innerError"]["client-request-id"] == "crid-1"
    assert error["innerError"]["request-id"] == first.headers["request-id"]
    assert error["innerError"]["status"] == "429"
    assert second.status_code != 429
    assert list_faults(emu) == []  # spent, so removed


def test_429_on_login_is_an_entra_error(emu: Emulator, http: httpx.Client) -> None:
    add_fault(emu, host="login", kind="429", count=1)
    response = token_post(http, emu)
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    body = response.json()
    assert body["error"] == "temporarily_unavailable"
    assert body["error_codes"] == [90055]
    assert body["correlation_id"] == "crid-2"
    assert body["error_description"].startswith("AADSTS90055: ")


def test_429_on_partner_center_is_its_throttling_shape(emu: Emulator, http: httpx.Client) -> None:
    add_fault(emu, host="partner_center", kind="429", count=1)
    response = customers_get(http, emu)
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    assert response.json() == {
        "statusCode": 429,
        "message": "Rate limit is exceeded. Try again later.",
    }
    assert response.headers["ms-correlationid"] == "11111111-1111-1111-1111-111111111111"


# -- 5xx ------------------------------------------------------------------------------------------


def test_503_in_each_host_shape(emu: Emulator, http: httpx.Client) -> None:
    add_fault(emu, host="*", kind="503", count=3)
    graph, login, partner = graph_get(http, emu), token_post(http, emu), customers_get(http, emu)
    assert [r.status_code for r in (graph, login, partner)] == [503, 503, 503]
    assert graph.json()["error"]["code"] == "serviceNotAvailable"
    assert login.json()["error"] == "temporarily_unavailable"
    assert partner.json()["source"] == "PartnerFD"
    assert partner.json()["data"] == []
    assert list_faults(emu) == []


@pytest.mark.parametrize("status", [500, 502, 504])
def test_other_server_errors(emu: Emulator, http: httpx.Client, status: int) -> None:
    add_fault(emu, host="graph", kind=str(status), count=1)
    response = graph_get(http, emu)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message", "innerError"}


# -- drop -----------------------------------------------------------------------------------------


def test_drop_is_a_broken_transfer_for_httpx(emu: Emulator, http: httpx.Client) -> None:
    add_fault(emu, host="graph", kind="drop", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        graph_get(http, emu)
    assert graph_get(http, emu).status_code < 500  # a new connection, answered by Graph itself
    assert list_faults(emu) == []


async def test_drop_is_a_broken_transfer_for_aiohttp(emu: Emulator) -> None:
    add_fault(emu, host="partner_center", kind="drop", count=1)
    context = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.get(emu.endpoints.partner_center + "/v1/customers?size=1") as r:
                await r.read()
        async with session.get(emu.endpoints.partner_center + "/v1/customers?size=1") as r:
            assert r.status == 401  # the host itself answers again: no token


# -- matching: count, path prefix, host, rate -----------------------------------------------------


def test_count_decrements_and_the_spent_fault_is_removed(emu: Emulator, http: httpx.Client) -> None:
    fault = add_fault(emu, host="partner_center", kind="500", count=3)
    assert [f["count"] for f in list_faults(emu)] == [3]
    assert customers_get(http, emu).status_code == 500
    assert list_faults(emu) == [{**fault, "count": 2}]
    assert customers_get(http, emu).status_code == 500
    assert customers_get(http, emu).status_code == 500
    assert list_faults(emu) == []
    assert customers_get(http, emu).status_code == 401  # the host itself: no token


def test_path_prefix_limits_the_fault(emu: Emulator, http: httpx.Client) -> None:
    add_fault(emu, host="partner_center", kind="503", path_prefix="/v1/customers/")
    one = customers_get(http, emu, "/v1/customers/684c5f21-607e-5168-9fcf-c3321a77528b")
    listing = customers_get(http, emu, "/v1/customers?size=1")
    assert one.status_code == 503
    assert listing.status_code == 401
    assert len(list_faults(emu)) == 1  # no count: it stays


def test_fault_for_another_host_does_not_apply(emu: Emulator, http: httpx.Client) -> None:
    add_fault(emu, host="login", kind="503")
    assert customers_get(http, emu).status_code == 401
    assert graph_get(http, emu).status_code != 503


def test_latency_passes_the_request_through(emu: Emulator, http: httpx.Client) -> None:
    add_fault(emu, host="partner_center", kind="latency", latency=0.01, count=1)
    assert customers_get(http, emu).status_code == 401
    assert list_faults(emu) == []  # it fired


def test_partial_rate_is_deterministic_and_reset_replays_it(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(world_with_faults({"host": "partner_center", "kind": "503", "rate": 0.5}))
    context = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)
    with httpx.Client(verify=context) as http:
        first = [customers_get(http, emu).status_code == 503 for _ in range(24)]
        with control_client(emu) as control:
            assert control.post("/_emulator/reset").status_code == 200
        again = [customers_get(http, emu).status_code == 503 for _ in range(24)]
    rng = random.Random(RNG_SEED)
    assert first == [rng.random() < 0.5 for _ in range(24)]
    assert again == first
    assert 0 < sum(first) < 24


def test_unknown_host_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown host"):
        FaultMiddleware(lambda scope, receive, send: None, None, "mail")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fault", "mentions"),
    [
        ({"host": "mail", "kind": "503"}, "host 'mail'"),
        ({"host": "graph", "kind": "418"}, "kind '418'"),
        ({"host": "graph", "kind": "503", "rate": 2}, "rate 2"),
        ({"host": "graph", "kind": "503", "count": 0}, "count 0"),
    ],
)
def test_control_api_refuses_a_fault_that_cannot_fire(
    emu: Emulator, fault: dict[str, Any], mentions: str
) -> None:
    with control_client(emu) as control:
        response = control.post("/_emulator/faults", json=fault)
    assert response.status_code == 400
    assert mentions in response.json()["error"]
    assert list_faults(emu) == []
