"""The HTTP ``Date`` header from the world clock, on every host.

Token times (``iat``, ``exp``, ``expires_on``), Graph's ``innerError.date`` and the expiry checks
all follow the world clock, which tests and the control API move forward. A ``Date`` in real time
would tell a client that reads it (clock-skew checks, caches keyed on the server's time) a time
the rest of the answer contradicts, so every answer carries the world's time instead. uvicorn's
own ``Date`` is switched off (server.py); this middleware is the only one.
"""

from __future__ import annotations

from email.utils import formatdate

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from csp_emulator.context import EmulatorContext


class WorldDate:
    """ASGI middleware: ``Date`` = the world clock's now, in RFC 7231's IMF-fixdate."""

    def __init__(self, app: ASGIApp, ctx: EmulatorContext) -> None:
        self.app = app
        self.ctx = ctx
        self._second = -1
        self._value = b""

    def _date(self) -> bytes:
        # ctx.world, not a world kept here: a control reset replaces it (and its clock).
        second = int(self.ctx.world.clock.now())
        if second != self._second:  # formatted once a second, not once a request
            self._second, self._value = second, formatdate(second, usegmt=True).encode()
        return self._value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                headers.append((b"date", self._date()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_dated)
