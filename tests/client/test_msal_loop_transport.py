"""MSAL's requests over the caller's event loop (MsalTransport.via_loop), against the emulator
over real TLS: async asks use the loop, sync asks use requests, and both paths agree on tokens,
trust (client-traps §3), proxies, errors and what the session's hooks see."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import jwt
import pytest
import requests

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import DEMO_PARTNERS
from cspgraph.http.sessions import requests_session
from cspgraph.identity import TokenProvider
from cspgraph.identity.app_tokens import transport_error
from cspgraph.identity.msal_transport import MsalTransport, encode_body
from tests.client.conftest import EU_CLIENT, NA_CLIENT, Control, record_requests

MakeProvider = Callable[..., TokenProvider]
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def claims(token: str) -> dict[str, Any]:
    value: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return value


def count_sends(session: requests.Session) -> list[str]:
    """URLs the requests session itself sent (its response hooks also see loop requests)."""
    sent: list[str] = []
    original = session.send

    def send(request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        sent.append(str(request.url))
        return original(request, **kwargs)

    session.send = send  # type: ignore[method-assign]
    return sent


def client_credentials(region: str) -> dict[str, str]:
    partner = DEMO_PARTNERS[region]
    return {
        "grant_type": "client_credentials",
        "client_id": partner["client_id"],
        "client_secret": partner["client_secret"],
        "scope": GRAPH_SCOPE,
    }


@pytest.fixture
async def aio() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def loop_transport(session: requests.Session, aio: aiohttp.ClientSession) -> MsalTransport:
    async def factory() -> aiohttp.ClientSession:
        return aio

    return MsalTransport(session, aio_session=factory)


async def in_worker(transport: MsalTransport, call: Callable[[], Any], *, loop: bool = True) -> Any:
    """Run ``call`` in a worker thread, inside ``via_loop`` of the running loop (or not)."""
    running = asyncio.get_running_loop() if loop else None

    def work() -> Any:
        with transport.via_loop(running):
            return call()

    return await asyncio.to_thread(work)


async def test_async_asks_go_over_the_loop_and_sync_asks_through_requests(
    provider: TokenProvider, control: Control
) -> None:
    transport = provider.app_tokens._transport
    sent = count_sends(provider.session)
    na_tenant = (await provider.route("customer.com")).tenant_id
    eu_tenant = control.customers("EU")[0]["id"]

    def issued() -> tuple[int, int]:
        na_by = [t["client_id"] for t in control.tokens(tenant=na_tenant)]
        eu_by = [t["client_id"] for t in control.tokens(tenant=eu_tenant)]
        return na_by.count(NA_CLIENT), eu_by.count(EU_CLIENT)

    before = issued()
    na = await provider.get_token(na_tenant)
    assert transport.loop_requests == 1  # the token POST; the discovery document was handed over
    assert sent == []
    eu = await asyncio.to_thread(provider.get_token_sync, eu_tenant)
    assert transport.loop_requests == 1
    assert [url.rsplit("/", 1)[-1] for url in sent] == ["openid-configuration", "token"]
    # The same kind of token either way, each from its region's app, each issued once.
    na_claims, eu_claims = claims(na), claims(eu)
    assert (na_claims["appid"], na_claims["tid"], na_claims["idtyp"]) == (
        NA_CLIENT,
        na_tenant,
        "app",
    )
    assert (eu_claims["appid"], eu_claims["tid"], eu_claims["idtyp"]) == (
        EU_CLIENT,
        eu_tenant,
        "app",
    )
    assert issued() == (before[0] + 1, before[1] + 1)
    # Served from the store afterwards, on both paths.
    assert await provider.get_token("customer.com") == na
    assert provider.get_token_sync(eu_tenant) == eu
    assert provider.app_tokens.token_requests == 2
    assert issued() == (before[0] + 1, before[1] + 1)


async def test_the_session_hooks_see_requests_sent_over_the_loop(
    provider: TokenProvider,
) -> None:
    wire = record_requests(provider.session)
    route = await provider.route("customer.com")
    await provider.get_token(route.tenant_id)
    token_url = f"{provider.cloud.login}/{route.tenant_id}/oauth2/v2.0/token"
    assert wire == [("POST", token_url)]
    assert provider.app_tokens._transport.loop_requests == 1


async def test_both_paths_answer_the_same_error_shapes(
    provider: TokenProvider, aio: aiohttp.ClientSession
) -> None:
    """A refused credential comes back as the same OAuth2 answer; MSAL turns it into the same
    result dict, and the taxonomy into the same error."""
    route = await provider.route("customer.com")
    url = f"{provider.cloud.login}/{route.tenant_id}/oauth2/v2.0/token"
    data = {**client_credentials("NA"), "client_secret": "wrong"}
    transport = loop_transport(provider.session, aio)
    over_loop = await in_worker(transport, lambda: transport.post(url, data=data))
    direct = await in_worker(transport, lambda: transport.post(url, data=data), loop=False)
    assert transport.loop_requests == 1
    assert over_loop.status_code == direct.status_code == 401
    loop_body, direct_body = json.loads(over_loop.text), direct.json()
    assert loop_body["error"] == direct_body["error"] == "invalid_client"
    assert loop_body["error_codes"] == direct_body["error_codes"] == [7000215]
    assert over_loop.headers["content-type"] == direct.headers["content-type"]


async def test_a_refused_connection_raises_what_requests_raises(
    aio: aiohttp.ClientSession,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"https://127.0.0.1:{port}/tenant/oauth2/v2.0/token"
    with requests_session() as session:
        transport = loop_transport(session, aio)
        errors = []
        for loop in (True, False):
            with pytest.raises(requests.ConnectionError) as info:
                await in_worker(transport, lambda: transport.post(url, data={"a": "b"}), loop=loop)
            errors.append(transport_error(info.value, "t", "app-only token"))
        assert transport.loop_requests == 1
    assert [type(e) for e in errors] == [type(errors[1])] * 2
    assert str(errors[0]) == str(errors[1])
    assert errors[0].retryable


async def test_an_untrusted_certificate_raises_an_ssl_error_on_both_paths(
    emulator: Emulator, aio: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    url = f"{emulator.endpoints.authority_host}/common/v2.0/.well-known/openid-configuration"
    with requests_session() as session:  # public CAs only: the emulator's CA is not among them
        transport = loop_transport(session, aio)
        for loop in (True, False):
            with pytest.raises(requests.exceptions.SSLError):
                await in_worker(transport, lambda: transport.get(url), loop=loop)
        assert transport.loop_requests == 1


async def test_the_loop_trusts_what_requests_would_trust(
    emulator: Emulator, aio: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """client-traps §3 on the loop path: a configured CA wins over a foreign REQUESTS_CA_BUNDLE,
    and a session that reads the environment trusts the bundle named there."""
    import certifi

    url = f"{emulator.endpoints.authority_host}/common/v2.0/.well-known/openid-configuration"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    with requests_session(emulator.endpoints.ca_bundle) as configured:
        transport = loop_transport(configured, aio)
        answer = await in_worker(transport, lambda: transport.get(url))
        assert (answer.status_code, transport.loop_requests) == (200, 1)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.endpoints.ca_bundle))
    with requests_session() as from_env:
        transport = loop_transport(from_env, aio)
        answer = await in_worker(transport, lambda: transport.get(url))
        assert (answer.status_code, transport.loop_requests) == (200, 1)


async def test_a_proxy_from_the_environment_keeps_requests(
    emulator: Emulator, aio: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.endpoints.ca_bundle))
    url = f"{emulator.endpoints.authority_host}/common/v2.0/.well-known/openid-configuration"
    with requests_session() as session:  # reads the environment, proxies included
        transport = loop_transport(session, aio)
        with pytest.raises(requests.exceptions.ProxyError):
            await in_worker(transport, lambda: transport.get(url))
        assert transport.loop_requests == 0


async def test_on_the_loop_thread_or_after_stopping_requests_are_used(
    emulator: Emulator, aio: aiohttp.ClientSession
) -> None:
    url = f"{emulator.endpoints.authority_host}/common/v2.0/.well-known/openid-configuration"
    with requests_session(emulator.endpoints.ca_bundle) as session:
        transport = loop_transport(session, aio)
        sent = count_sends(session)
        # Waiting on the loop from the loop's own thread would never end.
        with transport.via_loop(asyncio.get_running_loop()):
            assert transport.get(url).status_code == 200
        transport.stop_loop_requests()
        answer = await in_worker(transport, lambda: transport.get(url))
        assert answer.status_code == 200
        assert (transport.loop_requests, len(sent)) == (0, 2)


def test_a_stopped_transport_gives_up_waiting_for_its_loop() -> None:
    """A provider closing its pool on the loop's thread blocks the loop; workers waiting for a
    request on it give up instead of waiting out the request timeout."""
    with requests_session() as session:
        transport = MsalTransport(session)
        never: concurrent.futures.Future[Any] = concurrent.futures.Future()
        transport.stop_loop_requests()
        with pytest.raises(requests.exceptions.ReadTimeout):
            transport._wait(never, "https://login.example/t/oauth2/v2.0/token", 3600.0)
        assert never.cancelled()


def test_a_form_body_is_encoded_as_requests_encodes_it() -> None:
    data = {
        "grant_type": "client_credentials",
        "scope": "https://graph.microsoft.com/.default offline_access",
        "client_secret": "p@ss+w/rd=&ü",
        "claims": None,
        "list": ["a", "b c"],
    }
    body, headers = encode_body(data, {"Accept": "application/json"})
    prepared = requests.Request(
        "POST", "https://login.example/t", data=data, headers={"Accept": "application/json"}
    ).prepare()
    assert body == prepared.body
    assert headers["Content-Type"] == prepared.headers["Content-Type"]
    assert encode_body(b"raw", None) == (b"raw", {})
    kept, _ = encode_body({"a": "b"}, {"content-type": "text/plain"})
    assert kept == "a=b"
    assert encode_body({"a": "b"}, {"content-type": "text/plain"})[1] == {
        "content-type": "text/plain"
    }
