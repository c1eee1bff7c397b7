"""Each emulated host's answers held for as long as the latency model says (latency.py).

The middleware sits outside the fault injector, so an injected error or a 429 takes its time like
any answer. It lets the host build its answer, reads the object count the host put in
:data:`~csp_emulator.latency.OBJECTS_HEADER` (and removes it), draws the wait, records it, and
only then starts the response: an asynchronous wait, never CPU, so thousands of answers can wait
at once, which ends early (and answers nothing) when the client disconnects. With no latency set
for the host, requests pass straight through.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from csp_emulator.context import EmulatorContext
from csp_emulator.latency import HOSTS, OBJECTS_HEADER_BYTES


class _ClientLeft(Exception):
    """The client closed the connection while its answer was being held."""


async def _client_left_within(seconds: float, receive: Receive) -> bool:
    """Hold for ``seconds``; True as soon as the client disconnects (so a client that gives up
    does not leave its answer waiting, for as long as 10 minutes, in the server)."""

    async def disconnected() -> None:
        # What the host did not read of the request comes first, then the disconnect.
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(disconnected(), seconds)
    except TimeoutError:
        return False
    return True


class LatencyMiddleware:
    """Applies the world's latency model for one host (``"login"``, ``"graph"``,
    ``"partner_center"``)."""

    def __init__(self, app: ASGIApp, ctx: EmulatorContext, host: str) -> None:
        if host not in HOSTS:
            raise ValueError(f"unknown host {host!r}; expected one of {', '.join(HOSTS)}")
        self.app = app
        self.ctx = ctx
        self.host = host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        model = self.ctx.world.settings.latency.hosts.get(self.host)
        if scope["type"] != "http" or model is None or not model.active:
            await self.app(scope, receive, send)
            return
        state = self.ctx.state.latency
        host = self.host

        async def delayed(message: Message) -> None:
            if message["type"] == "http.response.start":
                objects = 0
                headers = []
                for name, value in message.get("headers", ()):
                    if name == OBJECTS_HEADER_BYTES:
                        objects = int(value)
                    else:
                        headers.append((name, value))
                seconds, slow = state.draw(host, model, objects)
                state.record(
                    host,
                    self._tenant(scope),
                    str(scope.get("method", "")),
                    str(scope.get("path", "")),
                    int(message["status"]),
                    objects,
                    seconds,
                    slow,
                )
                message = {**message, "headers": headers}
                if seconds > 0.0 and await _client_left_within(seconds, receive):
                    raise _ClientLeft
            await send(message)

        try:
            await self.app(scope, receive, delayed)
        except _ClientLeft:
            return  # nobody is waiting for this answer any more

    def _tenant(self, scope: Scope) -> str:
        """The tenant a request acts in: the token's for Graph and Partner Center (the partner,
        there), the path's first segment for the identity platform."""
        if self.host == "login":
            ref = str(scope.get("path", "")).lstrip("/").split("/", 1)[0]
            tenant = self.ctx.world.tenant(ref) if ref else None
            return tenant.id if tenant is not None else ref
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                return self.ctx.state.latency.tenant_of_token(value)
        return ""
