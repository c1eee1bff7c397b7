"""The emulator against hostile callers: bad bearer tokens are never remembered, request heads
are capped as Microsoft's front ends cap them, and the control API and world files refuse values
that would break the emulator (a NaN clock, a number for a path, an endless latency, a world
that does not fit in memory) with a clear 400 or load error, leaving the emulator serving."""

from __future__ import annotations

import json
import os
import secrets
import socket
import ssl
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from csp_emulator.request_head import MAX_REQUEST_HEAD
from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import WorldFileError, load_world_data, load_world_file
from tests.conftest import MakeEmulator, tls
from tests.emulator.graph_tokens import app_token, graph_client

TOO_LONG = "HTTP Error 400. The size of the request headers is too long."


def control(emu: Emulator) -> httpx.Client:
    return httpx.Client(base_url=emu.endpoints.control + "/_emulator", verify=tls(emu), timeout=10)


def world_without_time(c: httpx.Client) -> dict[str, Any]:
    """The control API's view of the world, without the wall clock that ticks on its own."""
    world: dict[str, Any] = c.get("/world").json()
    world.pop("now")
    return world


def users_status(emu: Emulator) -> int:
    """The status of an ordinary, valid Graph read: what every broken setting used to break."""
    with graph_client(emu, app_token(emu)) as graph:
        return graph.get("/v1.0/users", params={"$top": "1"}).status_code


# -- the token-validation cache --------------------------------------------------------------------


def test_invalid_bearer_tokens_are_refused_and_never_cached(emulator: Emulator) -> None:
    keys = emulator.ctx.keys
    with graph_client(emulator, app_token(emulator)) as graph:
        assert graph.get("/v1.0/users").status_code == 200  # a valid token is cached once
    before = keys.cached_tokens
    junk = [secrets.token_urlsafe(2048) for _ in range(50)]
    forged = [app_token(emulator)[:-8] + secrets.token_urlsafe(6) for _ in range(50)]
    for token in junk + forged:
        with graph_client(emulator, token) as graph:
            response = graph.get("/v1.0/users")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert keys.cached_tokens == before


def test_a_valid_token_is_validated_once_and_served_from_the_cache(emulator: Emulator) -> None:
    token = app_token(emulator)
    before = emulator.ctx.keys.cached_tokens
    with graph_client(emulator, token) as graph:
        for _ in range(5):
            assert graph.get("/v1.0/users", params={"$top": "1"}).status_code == 200
    assert emulator.ctx.keys.cached_tokens == before + 1


# -- request heads ---------------------------------------------------------------------------------


def raw_request(emu: Emulator, head: bytes) -> bytes:
    """Send ``head`` on a fresh TLS connection to Graph and read until the server closes."""
    url = httpx.URL(emu.endpoints.graph)
    context = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)
    with (
        socket.create_connection((url.host, url.port), timeout=10) as plain,
        context.wrap_socket(plain, server_hostname=url.host) as sock,
    ):
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Big": "a" * 60_000}, id="one 60 KB header"),
        pytest.param({f"X-H{i}": "a" * 1_000 for i in range(40)}, id="forty 1 KB headers"),
    ],
)
def test_a_request_head_over_the_cap_is_400_request_too_long(
    emulator: Emulator, headers: dict[str, str]
) -> None:
    with graph_client(emulator, app_token(emulator)) as graph:
        response = graph.get("/v1.0/users", headers=headers)
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/html")
        assert TOO_LONG in response.text
        assert response.headers["connection"] == "close"
        # The client opens a new connection and is served as before.
        assert graph.get("/v1.0/users", params={"$top": "1"}).status_code == 200


def test_a_long_url_and_token_under_the_cap_are_served(emulator: Emulator) -> None:
    with graph_client(emulator, app_token(emulator)) as graph:
        response = graph.get(
            "/v1.0/users", params={"$top": "1"}, headers={"X-Padding": "p" * 16_000}
        )
    assert response.status_code == 200


def test_a_header_that_never_ends_is_refused_before_it_is_buffered_whole(
    emulator: Emulator,
) -> None:
    # No end of line: the parser would hold the value until it ended; the cap answers first.
    head = b"GET /v1.0/users HTTP/1.1\r\nHost: graph\r\nX-Endless: " + b"a" * (MAX_REQUEST_HEAD + 8)
    answer = raw_request(emulator, head)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert TOO_LONG.encode() in answer


# -- the control API ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "says"),
    [
        ("POST", "/clock", {"seconds": "nan"}, "duration"),
        ("POST", "/clock", {"seconds": "inf"}, "duration"),
        ("POST", "/clock", {"seconds": 1e300}, "century"),
        ("POST", "/clock", {"seconds": [1]}, "duration"),
        ("POST", "/faults", {"host": "graph", "kind": "500", "path_prefix": 5}, "path_prefix"),
        ("POST", "/faults", {"host": "graph", "kind": "latency", "latency": "inf"}, "duration"),
        ("POST", "/faults", {"host": "graph", "kind": "latency", "latency": 86400}, "latency"),
        ("POST", "/faults", {"host": "graph", "kind": "500", "rate": "nan"}, "rate"),
        ("POST", "/faults", {"host": "graph", "kind": "500", "count": 1.5}, "count"),
        ("POST", "/faults", {"host": "graph", "kind": "500", "count": True}, "count"),
        ("POST", "/faults", {"host": 5, "kind": "500"}, "host"),
        ("PUT", "/settings", {"propagation_delay": "nan"}, "duration"),
        ("PUT", "/settings", {"page_size": True}, "page_size"),
        ("PUT", "/settings", {"page_size": 2.5}, "page_size"),
        ("PUT", "/settings", {"token_lifetime": "inf"}, "duration"),
        ("PUT", "/settings", {"token_lifetime": float("inf")}, "not JSON"),  # Infinity literal
        ("POST", "/tenants/customer.com/groups", {"id": 5, "displayName": "x"}, "id"),
        ("POST", "/tenants/customer.com/groups", {"id": "a/b", "displayName": "x"}, "id"),
        ("POST", "/tenants/customer.com/groups", {"id": "g1", "_members": 5}, "_members"),
        ("POST", "/tenants/customer.com/users", {"userPrincipalName": 5}, "userPrincipalName"),
        ("POST", "/relationships", {"partner": 5, "customer": "customer.com"}, "partner"),
    ],
)
def test_the_control_api_refuses_values_that_would_break_the_emulator(
    make_emulator: MakeEmulator, method: str, path: str, body: dict[str, Any], says: str
) -> None:
    emu = make_emulator()
    with control(emu) as c:
        before = world_without_time(c)
        # Written with the standard library, which writes NaN and Infinity literals (httpx won't).
        response = c.request(
            method, path, content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert says in response.json()["error"]
        assert world_without_time(c) == before  # nothing changed, not even half of it
        assert c.get("/clock").status_code == 200
    assert users_status(emu) == 200


def test_an_object_id_cannot_be_changed_behind_graphs_back(make_emulator: MakeEmulator) -> None:
    emu = make_emulator()
    with control(emu) as c:
        user = c.get("/tenants/customer.com/users").json()["value"][0]
        moved = c.patch(f"/tenants/customer.com/users/{user['id']}", json={"id": 7})
        assert moved.status_code == 400 and "id" in moved.json()["error"]
        renamed = c.patch(f"/tenants/customer.com/users/{user['id']}", json={"jobTitle": "CFO"})
        assert renamed.status_code == 200 and renamed.json()["jobTitle"] == "CFO"
        member = c.post(f"/tenants/customer.com/groups/{user['id']}/members", json={"id": 7})
        assert member.status_code in (400, 404)
    assert users_status(emu) == 200


def test_a_clock_pushed_to_the_far_future_is_refused_not_broken(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator()
    with control(emu) as c:
        for _ in range(100):  # a century at a time, until the year 9000 stops it
            if c.post("/clock", json={"seconds": "36500d"}).status_code == 400:
                break
        else:
            pytest.fail("the clock went past the year 9000")
        assert c.get("/clock").status_code == 200
        assert c.get("/world").status_code == 200


# -- world files -----------------------------------------------------------------------------------


def world_with(settings: dict[str, Any] | None = None, **tenant: Any) -> dict[str, Any]:
    return {
        "settings": settings or {},
        "tenant": [{"domain": "partner.com", "kind": "partner"},
                   {"domain": "customer.com", "partner": "partner.com", **tenant}],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (world_with({"propagation_delay": float("nan")}), "settings.propagation_delay"),
        (world_with({"token_lifetime": float("inf")}), "settings.token_lifetime"),
        (world_with({"refresh_token_lifetime": "nan"}), "settings.refresh_token_lifetime"),
        (world_with({"fault": [{"kind": "latency", "latency": float("inf")}]}), "latency"),
        (world_with({"fault": [{"kind": "latency", "latency": "2h"}]}), "latency"),
        (world_with({"fault": [{"kind": "500", "path_prefix": 5}]}), "path_prefix"),
        (world_with(generate={"users": 10**9}), "generate.users"),
        (
            {
                "tenant": [
                    {"domain": f"c{i}.com", "generate": {"users": 100_000, "groups": 100_000}}
                    for i in range(11)
                ]
            },
            "at most",
        ),
        (world_with(id=5), "tenant[1].id"),
    ],
)
def test_a_world_file_with_values_that_would_break_the_emulator_is_a_load_error(
    data: dict[str, Any], says: str
) -> None:
    with pytest.raises(WorldFileError) as refused:
        load_world_data(data, source="hostile.toml")
    assert says in str(refused.value)
    assert str(refused.value).startswith("hostile.toml: ")


def test_a_world_file_that_is_not_utf8_is_a_load_error(tmp_path: Path) -> None:
    world = tmp_path / "world.toml"
    world.write_bytes(b'[[tenant]]\ndomain = "caf\xe9.com"\n')
    with pytest.raises(WorldFileError, match="not UTF-8"):
        load_world_file(world)


# -- private keys ----------------------------------------------------------------------------------


def test_the_emulators_private_keys_are_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    from csp_emulator.world.worldfile import demo_world

    old = os.umask(0)
    try:
        emu = Emulator(lambda: demo_world(0), state_dir=tmp_path / "state")
    finally:
        os.umask(old)
    try:
        for name in ("signing-key.pem", "server-key.pem"):
            mode = stat.S_IMODE((tmp_path / "state" / name).stat().st_mode)
            assert mode == 0o600, f"{name} is {mode:o}"
        assert not list((tmp_path / "state").glob(".*.tmp"))
    finally:
        emu.stop()
