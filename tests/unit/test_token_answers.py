"""What the token layer learns from a token endpoint's answer that MSAL read: its status and
``Retry-After`` (MSAL hands back only the body), so that a 429 is retried when the service says.

The answers come from the scripted stub over real sockets, through the transport MSAL uses.
"""

from __future__ import annotations

import asyncio

from cspgraph.http.errors import BadRequestError, TransientError
from cspgraph.http.sessions import requests_session
from cspgraph.identity.app_tokens import token_error, transport_error
from cspgraph.identity.msal_transport import Answer, MsalTransport
from tests.unit.graph_stub import GraphStub, json_reply

THROTTLED = {"error": "invalid_request", "error_description": "AADSTS90055: too many requests"}


async def test_the_transport_keeps_the_last_status_and_retry_after_it_received(
    stub: GraphStub,
) -> None:
    stub.script("POST", "/t/oauth2/v2.0/token", [
        lambda: json_reply(THROTTLED, 429, {"Retry-After": "2.5"}),
        lambda: json_reply({"access_token": "x", "expires_in": 3600}),
    ])  # fmt: skip
    session = requests_session()
    transport = MsalTransport(session)
    url = f"{stub.url}/t/oauth2/v2.0/token"

    def post() -> Answer | None:
        transport.forget_answer()
        transport.post(url, data={"grant_type": "client_credentials"})
        return transport.last_answer()

    try:
        assert await asyncio.to_thread(post) == Answer(429, "2.5")
        assert await asyncio.to_thread(post) == Answer(200, None)
    finally:
        session.close()


def test_a_throttled_token_answer_is_transient_and_carries_its_retry_after() -> None:
    error = token_error(THROTTLED, "t", "app-only token", Answer(429, "2.5"))
    assert isinstance(error, TransientError)
    assert (error.status, error.retry_after) == (429, "2.5")
    # The same body without its status says nothing transient: a bad request, as before.
    assert isinstance(token_error(THROTTLED, "t", "app-only token"), BadRequestError)


def test_a_5xx_msal_raised_on_is_transient_with_its_status() -> None:
    import requests

    error = transport_error(requests.HTTPError("HTTP 503"), "t", "token", Answer(503, "7"))
    assert isinstance(error, TransientError)
    assert (error.status, error.retry_after) == (503, "7")
    assert "answered HTTP 503" in str(error)
